"""Recording inbound messages: durably, idempotently, before anyone is told "received".

``InboundPipeline`` is the channels' ``InboundSink`` (``bot/handlers/kit/sink.py``), the one way
what a customer did reaches the core; each event is made storable here, once. ``receive``: it finds or creates the contact, finds or
opens the thread, stores the message once (unique account + channel + external id), and only then
returns, so the channel can acknowledge. Dispatch follows in a tracked background task; a message
recorded but not dispatched when the process dies is picked up by the sweeper in ``dispatch``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime, timedelta

from bot.handlers.kit.sink import Recorded, ThreadLocator
from bot.logs import log_event
from bot.metrics import Metrics
from bot.router.calls import CallRecorder
from bot.router.dispatch import Dispatcher
from bot.router.sanitize import checked_event, storable
from conversations.models import epoch_ms, utcnow
from conversations.repositories import Repositories
from conversations.thread_models import Activity, Decision, Message, Thread, ThreadStatus
from conversations.traffic import CallEvent, ConsentChange, Identity, Inbound, MessageEdit, ProviderEvent, StatusUpdate

_WINDOW_MARGIN = timedelta(hours=1)  # the longest sweep interval; a stored window open longer waits

log = logging.getLogger("omnirouter.router.inbound")


# (account, contact, identity, now) -> a resolved thread reopened for this message, or None
Reopener = Callable[[str, str, Identity, datetime, str | None], Awaitable[Thread | None]]
# (inbound, contact, now) -> the message marked as the answer to a rating question, and the
# resolved thread it belongs to (bot.router.satisfaction), or None
AnswerTagger = Callable[[Inbound, str, datetime], Awaitable[tuple[Inbound, str] | None]]


class InboundRecorder:
    """Stores inbound messages exactly once."""

    def __init__(
        self,
        store: Repositories,
        dispatch_lease: timedelta,
        locators: Mapping[str, ThreadLocator] | None = None,
        reopen: Reopener | None = None,
        answers: AnswerTagger | None = None,
    ) -> None:
        self._store = store
        self._answers = answers
        self._lease = dispatch_lease
        self._locators = dict(locators or {})
        self._reopen = reopen

    async def record(self, inbound: Inbound) -> Recorded:
        now = utcnow()
        store = self._store
        contact_id = await store.contacts.find_or_create_contact(
            inbound.account_id, inbound.sender, inbound.sender_name, now, phone=inbound.phone
        )
        locator = self._locators.get(inbound.channel)
        if locator is not None:
            located = await locator.locate_thread(inbound, contact_id, now)
            message, duplicate = await store.messages.record_inbound(inbound, contact_id, located.id, now, self._lease)
            if not duplicate:  # unread for the agents, as on the other channels
                await store.threads.touch_thread(located.id, now)
            return Recorded(message, located, duplicate)
        thread = await store.threads.find_open_thread(contact_id, inbound.channel, inbound.inbox_id)
        if thread is None:
            # Opening a thread is rare; check first that this is not a late duplicate of a
            # message whose thread has been resolved since, so a redelivery opens nothing.
            earlier = await store.messages.find_inbound(inbound)
            if earlier is not None:
                old = await store.threads.get_thread(earlier.thread_id)
                if old is not None:
                    return Recorded(earlier, old, duplicate=True)
            if (answered := await self._answer(inbound, contact_id, now)) is not None:
                return answered
            reopened = (
                await self._reopen(inbound.account_id, contact_id, inbound.sender, now, inbound.inbox_id)
                if self._reopen
                else None
            )
            thread = reopened or await store.threads.open_thread(
                inbound.account_id, contact_id, inbound.sender, now, inbound.inbox_id
            )
        # the message (with WhatsApp's window, which a reply may depend on), then the thread's
        # activity, each batched with other messages' writes; a redelivery marks nothing unread
        message, duplicate = await store.messages.record_inbound(inbound, contact_id, thread.id, now, self._lease)
        activity = Activity(now, inbound.window_ends_at, unread=not duplicate)
        # a new message to the bot: its dispatch writes the activity with the dialogue state (a
        # sweeper's dispatch, should this process die first, from the message's own record); a
        # reply window is left to it only while the one stored stays open meanwhile, for whoever
        # reads it from the thread (an agent's reply, the console)
        deferred = not duplicate and thread.status == ThreadStatus.BOT and self._window_kept(thread, inbound, now)
        if not deferred:
            await store.threads.mark_activity(thread.id, activity)
        thread.last_message_at = max(thread.last_message_at, now)
        if inbound.window_ends_at is not None:  # as stored: the reply to this message sees its window
            thread.wa_window_ends_ms = max(thread.wa_window_ends_ms or 0, epoch_ms(inbound.window_ends_at))
        return Recorded(message, thread, duplicate, activity if deferred else None)

    def _window_kept(self, thread: Thread, inbound: Inbound, now: datetime) -> bool:
        """Whether the thread's stored reply window (if the channel has one) is open long enough
        for the message's own to be written later: past two dispatch leases and a sweep (at most
        an hour), should the process die first and a sweeper's dispatch write it."""
        margin = _WINDOW_MARGIN + 2 * self._lease
        return inbound.window_ends_at is None or (thread.wa_window_ends_ms or 0) > epoch_ms(now + margin)

    async def _answer(self, inbound: Inbound, contact_id: str, now: datetime) -> Recorded | None:
        """The customer's rating of a resolved conversation, recorded in it (never a new one)."""
        tagged = await self._answers(inbound, contact_id, now) if self._answers else None
        if tagged is None:
            return None
        answer, thread_id = tagged
        thread = await self._store.threads.get_thread(thread_id)
        if thread is None:
            return None
        message, duplicate = await self._store.messages.record_inbound(answer, contact_id, thread.id, now, self._lease)
        return Recorded(message, thread, duplicate)


class InboundPipeline:
    """Record, then dispatch in the background; the ``InboundSink`` every channel is bound to."""

    def __init__(
        self, store: Repositories, recorder: InboundRecorder, dispatcher: Dispatcher, metrics: Metrics
    ) -> None:
        self._store = store
        self._recorder = recorder
        self._dispatcher = dispatcher
        self._metrics = metrics
        self._calls = CallRecorder(store)
        self._tasks: set[asyncio.Task[Decision | None]] = set()

    async def receive(self, inbound: Inbound) -> tuple[Recorded, asyncio.Task[Decision | None] | None]:
        """Record ``inbound``; returns it and the task dispatching it (``None`` for a duplicate).

        Raises ``StoreUnavailable`` when the store cannot be reached: nothing was acknowledged,
        so the sender must retry (HTTP channels answer 503).
        """
        return await self._receive(checked_event(inbound))

    async def record(self, events: Sequence[ProviderEvent]) -> dict[str, int]:
        """Record messages, apply edits, status reports and consent changes, in order; the counts
        of each outcome.

        Every entry is checked before any is stored, so a bad entry refuses the whole payload.
        Raises ``StoreUnavailable`` on an outage: whatever was recorded before it is deduplicated
        when the provider delivers the payload again.
        """
        checked = [checked_event(event) for event in events]
        counts = Counter(recorded=0, duplicates=0, statuses=0)
        for item in checked:
            if isinstance(item, StatusUpdate):
                await self._apply_status(item)
                counts["statuses"] += 1
            elif isinstance(item, ConsentChange):
                at_ms = epoch_ms(item.at)
                await self._store.phone.set_consent(
                    item.account_id, item.channel, item.address, item.state, at_ms, f"{item.channel}-preference"
                )
                counts["consents"] += 1
            elif isinstance(item, MessageEdit):
                counts["edits"] += 1
                if await self._apply_edit(item) is not None:
                    counts["recorded"] += 1
            else:
                result, _ = await self._receive(item)
                counts["duplicates" if result.duplicate else "recorded"] += 1
        return dict(counts)

    async def call_event(self, event: CallEvent, thread_channel: str) -> tuple[Message, bool]:
        """Record an ended call (the voice channel) in the caller's thread on ``thread_channel``;
        ``(message, duplicate)``."""
        return await self._calls.record(checked_event(event), thread_channel)

    async def _receive(self, inbound: Inbound) -> tuple[Recorded, asyncio.Task[Decision | None] | None]:
        started = time.perf_counter()
        try:
            recorded = await self._recorder.record(inbound)
        except Exception:
            self._metrics.inbound.labels(inbound.channel, "error").inc()
            raise
        self._metrics.ack_latency.labels(inbound.channel).observe(time.perf_counter() - started)
        result = "duplicate" if recorded.duplicate else "recorded"
        self._metrics.inbound.labels(inbound.channel, result).inc()
        log_event(
            log,
            f"inbound.{result}",
            channel=inbound.channel,
            account=inbound.account_id,
            message=recorded.message.id,
            thread=recorded.thread.id,
        )
        if recorded.duplicate:
            return recorded, None
        task = asyncio.create_task(self._dispatch(recorded))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return recorded, task

    async def _dispatch(self, recorded: Recorded) -> Decision | None:
        try:
            return await self._dispatcher.dispatch(recorded.message, recorded.thread, recorded.activity)
        except Exception as exc:  # the sweeper retries when the message's dispatch lease ends
            log_event(log, "dispatch.failed", logging.WARNING, message=recorded.message.id, error=type(exc).__name__)
            return None

    async def apply_edit(self, edit: MessageEdit) -> Recorded | None:
        """Apply a customer's edit to the message they sent; an edit of a message never recorded
        is recorded as that message. Returns the new record then, ``None`` for a plain edit."""
        return await self._apply_edit(storable(edit))

    async def _apply_edit(self, edit: MessageEdit) -> Recorded | None:
        edited = await self._store.messages.apply_edit(edit.message, edit.edited_at)
        log_event(
            log,
            "inbound.edited",
            channel=edit.message.channel,
            account=edit.message.account_id,
            message=edited.id if edited else None,
            original_known=edited is not None,
        )
        if edited is not None:
            return None
        recorded, _ = await self._receive(edit.message)
        return recorded

    async def apply_status(self, update: StatusUpdate) -> bool:
        """Record a provider's delivery report; ``False`` when it changed nothing (stale or
        unknown message), which is still a success for the provider."""
        return await self._apply_status(storable(update))

    async def _apply_status(self, update: StatusUpdate) -> bool:
        if update.opted_out:  # the provider refused the message: the customer opted out there
            at_ms = epoch_ms(update.at)
            await self._store.phone.set_consent(
                update.account_id, update.channel, update.opted_out, "stop", at_ms, update.external_id
            )
        changed = await self._store.messages.apply_status_update(update)
        if changed:  # the consoles showing this message refresh its delivery status
            await self._store.events.emit_event(update.account_id, "delivery", utcnow(), external_id=update.external_id)
        log_event(
            log,
            "delivery.status",
            channel=update.channel,
            external_id=update.external_id,
            status=str(update.status),
            applied=changed,
        )
        return changed

    async def drain(self, timeout: float = 10.0) -> None:
        """Wait for dispatches in flight (at shutdown); unfinished ones fall to the sweeper."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout)
