"""The durable outbox: every outbound message is stored first, with its send state (an *item*:
``conversations/outbox.py``), then sent by a worker.

A worker *leases* an item (an atomic ``find_one_and_update`` that pushes its ``due_ms`` to the
lease expiry), so however many router processes run, one item is in one worker's hands at a
time; if that worker dies, the lease runs out and another takes the item (a send slower than the
lease renews it meanwhile, so it is not taken over while in flight; so does recording a send the
provider took, which is retried while the store does not answer). A failed send is
rescheduled with exponential backoff and jitter, never sooner than the provider's
``retry_after``; after ``max_attempts`` the item is dead-lettered, visible at ``/api/outbox``.
A provider's error text often names the recipient ("<jane@x>: Recipient address rejected"): it is
kept whole only in the item's ``last_error`` (which erasing the contact removes); the log lines say
the error with addresses and numbers redacted.

While this process's worker runs, a reply it enqueues is stored already leased by it and sent
at once, without a lease round trip; the guarantees are the same as for an item leased from the
store (if the process dies, the lease runs out and another worker sends the item). An
``at_most_once`` item (below) is not: the worker leases it when a sending slot is free, so that
its lease marks an attempt begun, not one waiting for a slot.

A reply is sent at least once: a process that dies after the provider took it and before the
store recorded it leaves it leased, and when the lease runs out another worker sends it again.
An item enqueued ``at_most_once`` (a campaign message: no provider we use takes an idempotency
key) is instead dead-lettered when a lease finds its last attempt ended with no outcome recorded,
with the reason ``INTERRUPTED``: it may or may not have reached the customer, and is not sent twice.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from bot.handlers.kit.protocol import Capabilities, ChannelAdapter, PermanentSendError, RetryableSendError
from bot.logs import error_fields, log_event
from bot.metrics import Metrics
from bot.router.leasing import LoopStop, lease_and_work
from bot.router.outbox_leases import LeaseKeeper
from bot.router.send_failures import SendFailures
from bot.sending_settings import OutboxSettings
from conversations.errors import StoreUnavailable
from conversations.models import epoch_ms, utcnow
from conversations.outbox import INTERRUPTED, outbound_document, outbox_item, settled_document
from conversations.repositories import Repositories
from conversations.thread_models import Message, OutboxItem, Thread
from conversations.traffic import Identity

if TYPE_CHECKING:
    from bot.router.webhooks.events import ThreadEvents

log = logging.getLogger("omnirouter.router.outbox")
T = TypeVar("T")
_RECORDING_LEASES = 10  # how long a sent item's record is retried, in leases, before giving up
# how often a running worker moves sends that a router of the release before issue 19 (still
# running beside this one during an upgrade) left in its outbox collection, seconds
ADOPT_EVERY = 60.0


@dataclass(frozen=True)
class SentFirst:
    """A reply sent before it was stored: its message, and its document with the outcome of the
    attempt (``sent``, ``retry`` or ``dead``), to be stored with the decision it carries out."""

    message: Message
    document: dict[str, Any]
    item: OutboxItem
    outcome: str


class Outbox:
    """Enqueues replies and runs the sending worker of this process."""

    def __init__(
        self,
        store: Repositories,
        adapters: Mapping[str, ChannelAdapter],
        metrics: Metrics,
        settings: OutboxSettings,
        events: ThreadEvents | None = None,
        adopt_every: float = ADOPT_EVERY,
    ) -> None:
        self._store = store
        self._events = events
        self._adapters = adapters
        self._metrics = metrics
        self._settings = settings
        self._lease = timedelta(seconds=settings.lease_seconds)
        self.owner = f"worker-{uuid.uuid4().hex[:12]}"
        self._failures = SendFailures(store, metrics, settings, self.owner)
        self._keeper = LeaseKeeper(store, self.owner, self._lease, self._spawn)
        self._wake = asyncio.Event()
        self._stop = LoopStop(self._wake)  # at shutdown: lease no more
        self._slots = asyncio.Semaphore(settings.concurrency)
        self._sending: set[asyncio.Task[None]] = set()
        self._in_hand: set[str] = set()  # items this process is sending or recording as sent
        # at-most-once items whose attempt this process began and whose outcome is not stored yet
        self._unrecorded: set[str] = set()
        self._direct = False  # the worker runs: send what this process enqueues itself
        self._adopt_every = adopt_every
        self._next_adoption = time.monotonic() + adopt_every  # start-up has just moved them

    async def enqueue_reply(
        self,
        *,
        dedup_key: str,
        thread: Thread,
        to: Identity,
        text: str,
        sender: dict[str, Any],
        in_reply_to: str | None = None,
        options: Sequence[str] = (),
        meta: Mapping[str, Any] | None = None,
        at_most_once: bool = False,
        live: bool = True,
    ) -> Message:
        """Store a reply for sending, at most once per ``dedup_key``, and wake the worker;
        ``at_most_once``: never sent again after an attempt interrupted by a crash (see above);
        ``live``: the consoles' live feed tells of it."""
        # an at-most-once item is leased by the worker, with a sending slot in hand: stored leased, it
        # could wait past its lease for a slot and be taken for an interrupted attempt, never sent
        leased_by = (self.owner, self._lease) if self._direct and not at_most_once else None
        message, item = await self._store.outbox.store_outbound(
            dedup_key=dedup_key,
            thread=thread,
            to=to,
            text=text,
            sender=sender,
            now=utcnow(),
            in_reply_to=in_reply_to,
            options=options,
            meta=meta,
            leased_by=leased_by,
            at_most_once=at_most_once,
            live=live,
        )
        if item is not None and leased_by is not None:
            self._spawn(self._send_direct(item))
        elif leased_by is None:
            self.wake()
        if self._events is not None:
            await self._events.message(thread, message)
        return message

    async def send_first(self, *, retry: bool = True, **fields: Any) -> SentFirst | None:
        """Send a reply (the fields of :meth:`enqueue_reply`) now, before it is stored: its caller
        holds a lease that keeps what it answers durable meanwhile (an inbound message's dispatch
        lease) and stores the returned document (:meth:`until_stored`), then calls :meth:`settle`.
        ``None`` when this process runs no worker: enqueue the reply instead. Without ``retry`` a
        failed attempt is dead-lettered at once: a reply that makes sense only before the others
        (a greeting) is not sent after them."""
        if not self._direct:
            return None
        message, doc = outbound_document(**fields, now=utcnow(), leased_by=(self.owner, self._lease))
        item = outbox_item(doc)
        adapter = self._adapters.get(item.channel)
        started = time.perf_counter()
        async with self._slots:
            try:
                if adapter is None:
                    raise PermanentSendError(f"channel {item.channel!r} is not configured")
                provider_id = await adapter.send(item.to_outbound())
            except PermanentSendError as exc:
                return self._unsent(message, doc, item, f"permanent: {exc}", None, retry=False)
            except RetryableSendError as exc:
                return self._unsent(message, doc, item, str(exc), exc.retry_after, retry=retry)
            except Exception as exc:  # an adapter bug or an unexpected network error: retry
                log_event(log, "outbox.send_error", logging.WARNING, item=item.id, **error_fields(exc))
                return self._unsent(message, doc, item, f"{type(exc).__name__}: {exc}", None, retry=retry)
        self._metrics.send_latency.labels(item.channel).observe(time.perf_counter() - started)
        return SentFirst(message, settled_document(doc, utcnow(), sent=provider_id), item, "sent")

    def _unsent(
        self, message: Message, doc: dict[str, Any], item: OutboxItem, error: str, after: float | None, *, retry: bool
    ) -> SentFirst:
        """A reply whose first attempt failed, as the worker records it: retried with backoff by
        the worker, or dead-lettered (a permanent error, or no attempt left)."""
        delay = self._failures.delay(item, after) if retry else None
        if delay is not None:
            due = utcnow() + timedelta(seconds=delay)
            return SentFirst(message, settled_document(doc, utcnow(), error=error, due_at=due), item, "retry")
        return SentFirst(message, settled_document(doc, utcnow(), error=error), item, "dead")

    async def settle(self, first: SentFirst, thread: Thread) -> None:
        """What follows a reply sent first once it is stored: counted and logged as the worker
        does, the consoles told of a dead letter, the webhooks of the reply published."""
        item, error = first.item, str(first.document["send"].get("last_error", ""))
        if first.outcome == "sent":
            self._metrics.outbound.labels(item.channel, "sent").inc()
            log_event(log, "outbox.sent", item=item.id, channel=item.channel, attempts=item.attempts)
        elif first.outcome == "retry":
            self._failures.retried(item, error, (first.document["send"]["due_ms"] - epoch_ms(utcnow())) / 1000)
        else:
            await self._failures.given_up(item, error)
        if self._events is not None:
            await self._events.message(thread, first.message)

    async def until_stored(self, write: Callable[[], Awaitable[T]], what: str) -> T:
        """``write``, asked again while the store is unavailable (up to ``_RECORDING_LEASES``
        leases): it records something the customer has been sent already, and left unrecorded
        it would be sent a second time."""
        delay = self._settings.base_delay
        deadline = time.monotonic() + self._settings.lease_seconds * _RECORDING_LEASES
        while True:
            try:
                return await write()
            except StoreUnavailable as exc:
                if time.monotonic() + delay > deadline:
                    raise
                log_event(log, "outbox.record_retry", logging.WARNING, item=what, **error_fields(exc))
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._settings.lease_seconds / 3)

    def capabilities(self, channel: str) -> Capabilities:
        """What ``channel`` can carry (and whether it has a reply window); nothing for a channel
        that is not configured."""
        adapter = self._adapters.get(channel)
        return adapter.capabilities if adapter is not None else Capabilities()

    def wake(self) -> None:
        """Look for due items now rather than at the next poll."""
        self._wake.set()

    async def run(self) -> None:
        """Lease and send due items until cancelled."""
        self._direct = True
        try:
            await lease_and_work(
                self._lease_next,
                self._send_and_release,
                slots=self._slots,
                wake=self._wake,
                poll_interval=self._settings.poll_interval,
                in_flight=self._sending,
                on_outage=lambda: log_event(log, "outbox.store_unavailable", logging.WARNING),
                stop=self._stop,
            )
        finally:
            self._direct = False

    async def _lease_next(self) -> OutboxItem | None:
        """The most overdue send, leased; now and then, first the sends an earlier release's
        router left in its own collection (see ``OutboxRepository.adopt_legacy_outbox``)."""
        if time.monotonic() >= self._next_adoption:
            self._next_adoption = time.monotonic() + self._adopt_every
            await self._store.outbox.adopt_legacy_outbox()
        return await self._store.outbox.lease_outbox(self.owner, utcnow(), self._lease)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send_direct(self, item: OutboxItem) -> None:
        """Send an item this process created leased to itself (within the sending slots).

        Under load the wait for a slot can use up the item's lease, and another process's worker
        may have taken the item over meanwhile: it is then that worker's to send, not ours."""
        await self._slots.acquire()
        kept: OutboxItem | None = item
        if item.due_ms - epoch_ms(utcnow()) <= self._lease.total_seconds() * 1000 / 2:
            try:  # less than half the lease is left for the send: renew it first
                kept = await self._keeper.renewed(item)
            except Exception:  # the store failed: the lease runs out and a worker sends the item
                log.warning(
                    "outbox.lease_renewal_failed", exc_info=True, extra={"omnirouter_fields": {"item": item.id}}
                )
                kept = None
        if kept is None:
            self._slots.release()
        else:
            await self._send_and_release(kept)

    async def drain(self, timeout: float = 10.0) -> None:
        """Wait for sends in flight."""
        if self._sending:
            await asyncio.wait(set(self._sending), timeout=timeout)

    async def stop(self, timeout: float = 10.0) -> None:
        """At shutdown: the worker leases no more (its loop ends between two leases, each item it
        leased in a task of its own), then the sends in flight are waited for."""
        await self._stop(timeout)
        await self.drain(timeout)

    async def send_due(self) -> int:
        """Send every item due now, one at a time; returns how many were attempted (for tests)."""
        count = 0
        while (item := await self._store.outbox.lease_outbox(self.owner, utcnow(), self._lease)) is not None:
            await self._send(item)
            count += 1
        return count

    async def _send_and_release(self, item: OutboxItem) -> None:
        """Send ``item`` in a slot; the slot is free again once the provider answered (recording
        the outcome in the store does not hold back the next send)."""
        held = True

        def release() -> None:
            nonlocal held
            if held:
                held = False
                self._slots.release()

        try:
            await self._send(item, release)
        except Exception as exc:
            log_event(log, "outbox.send_crashed", logging.ERROR, item=item.id, **error_fields(exc))
        finally:
            release()

    async def _send(self, item: OutboxItem, answered: Callable[[], None] | None = None) -> None:
        if item.id in self._in_hand:  # its lease ran out while the store was away: it is still ours
            log_event(log, "outbox.already_in_hand", item=item.id)
            return
        if item.at_most_once and item.lapsed_owner is not None and self._may_have_sent(item):
            await self._failures.dead(item, INTERRUPTED)  # the provider may have it already: not sent again
            self._unrecorded.discard(item.id)
            return
        self._in_hand.add(item.id)
        if item.at_most_once:
            self._unrecorded.add(item.id)
        try:
            await self._send_in_hand(item, answered)
            self._unrecorded.discard(item.id)  # its outcome stored, or the item another worker's
        finally:
            self._in_hand.discard(item.id)

    def _may_have_sent(self, item: OutboxItem) -> bool:
        """Whether the lapsed lease of an at-most-once item may have covered an attempt: any other
        worker's may have; this one's only if it began one and did not store the outcome (a lease
        of its own whose answer the store lost never began one)."""
        return item.lapsed_owner != self.owner or item.id in self._unrecorded

    async def _send_in_hand(self, item: OutboxItem, answered: Callable[[], None] | None) -> None:
        adapter = self._adapters.get(item.channel)
        started = time.perf_counter()
        try:
            if adapter is None:
                raise PermanentSendError(f"channel {item.channel!r} is not configured")
            try:
                provider_id = await self._keeper.keeping(item, adapter.send(item.to_outbound()))
            finally:
                if answered is not None:
                    answered()
        except PermanentSendError as exc:
            await self._failures.dead(item, f"permanent: {exc}")
            return
        except RetryableSendError as exc:
            await self._failures.retry(item, str(exc), exc.retry_after)
            return
        except Exception as exc:  # an adapter bug or an unexpected network error: retry
            log_event(log, "outbox.send_error", logging.WARNING, item=item.id, **error_fields(exc))
            await self._failures.retry(item, f"{type(exc).__name__}: {exc}", None)
            return
        self._metrics.send_latency.labels(item.channel).observe(time.perf_counter() - started)
        if await self._keeper.keeping(item, self._record_sent(item, provider_id)):
            self._metrics.outbound.labels(item.channel, "sent").inc()
            log_event(log, "outbox.sent", item=item.id, channel=item.channel, attempts=item.attempts)
            if item.meta.get("sender_kind") == "agent":  # the agent's console shows "sent"
                await self._store.events.emit_event(
                    item.account_id, "delivery", utcnow(), thread_id=item.thread_id, replies=[item.message_id]
                )
        else:
            log_event(log, "outbox.lease_lost", logging.WARNING, item=item.id)

    async def _record_sent(self, item: OutboxItem, provider_id: str) -> bool:
        """Record that the provider took ``item``; ``False`` if the lease passed to another worker.
        A store that times out is asked again (the lease kept meanwhile): see :meth:`until_stored`."""
        return await self.until_stored(
            lambda: self._store.outbox.complete_outbox(item, self.owner, provider_id, utcnow()), item.id
        )
