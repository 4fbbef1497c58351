"""The decision point: who answers an inbound message.

* thread assigned to an agent -> the agent's (the console shows it);
* a channel keyword (SMS STOP/START/HELP, in ``meta["keyword"]``) -> the customer's consent is
  recorded and the keyword answered with the channel's fixed text, if any; never queued;
* otherwise, with no NLU configured -> the human queue, and the customer is told once, politely;
  unless the message must never be answered automatically (``meta["no_auto_reply"]`` names why:
  an auto-reply, a bounce, a mailing list), which is queued silently.

Dispatch may run twice for one message (a process died after deciding but before recording the
decision, and the sweeper took over). Every effect is idempotent: queueing is a guarded status
change, and replies carry a dedup key, so a replay sends nothing twice.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from bot.logs import log_event
from bot.metrics import Metrics
from bot.router.outbox import Outbox
from bot.router.queue import Queue
from conversations.models import (
    Decision,
    DecisionAction,
    Identity,
    Message,
    SenderKind,
    Thread,
    ThreadStatus,
    epoch_ms,
    utcnow,
)
from conversations.store import Store, StoreError, StoreUnavailable

if TYPE_CHECKING:
    from bot.webhooks.events import ThreadEvents

log = logging.getLogger("omnirouter.router.dispatch")

NO_NLU = "no_nlu"
DIRECT = "direct_channel"  # the channel is configured to go straight to humans


class Dispatcher:
    def __init__(
        self, store: Store, queue: Queue, outbox: Outbox, metrics: Metrics, queued_notice: str,
        events: ThreadEvents | None = None,
    ) -> None:
        self._store = store
        self._events = events
        self._queue = queue
        self._outbox = outbox
        self._metrics = metrics
        self._queued_notice = queued_notice

    async def dispatch(self, message: Message, thread: Thread | None = None) -> Decision:
        """Decide on one inbound message, carry the decision out, and record it on the message."""
        started = time.perf_counter()
        if thread is None or thread.id != message.thread_id:
            thread = await self._store.get_thread(message.thread_id)
            if thread is None:
                raise StoreError(f"message {message.id} points at missing thread {message.thread_id}")
        keyword = message.meta.get("keyword")
        if keyword:
            await self._record_consent(message, keyword)
        if thread.status == ThreadStatus.ASSIGNED:
            decision = Decision(DecisionAction.TO_AGENT, "assigned", thread.id)
        elif keyword:
            decision = await self._answer_keyword(message, thread, keyword)
        else:
            reason = DIRECT if self._queue.straight_to_humans(thread.channel) else NO_NLU
            decision = await self._to_queue(message, thread, reason)
        if self._events is not None:  # before the decision is recorded: a replay publishes again
            await self._publish(message, thread, decision)
        await self._store.finish_dispatch(message.id, decision)
        await self._queue.after_dispatch(message, thread, decision)
        self._metrics.decisions.labels(str(decision.action)).inc()
        self._metrics.dispatch_latency.observe(time.perf_counter() - started)
        log_event(
            log,
            "dispatch.decided",
            message=message.id,
            thread=thread.id,
            action=str(decision.action),
            reason=decision.reason,
        )
        return decision

    async def _publish(self, message: Message, thread: Thread, decision: Decision) -> None:
        """The webhook events of this message; their ids derive from it, so a replay adds none."""
        assert self._events is not None
        if thread.opened_at == message.created_at:  # the recorder opened the thread for this message
            await self._events.publish("thread.created", thread, f"created|{thread.id}")
        await self._events.message(thread, message)
        if decision.action == DecisionAction.QUEUED:
            await self._events.publish("thread.queued", thread, f"queued|{message.id}", reason=decision.reason)

    async def _to_queue(self, message: Message, thread: Thread, reason: str) -> Decision:
        reason = str(message.meta.get("no_auto_reply") or reason)
        queued_now = thread.status == ThreadStatus.BOT and await self._queue.escalate(
            thread, reason, by_message=message.id
        )
        if not queued_now:
            current = await self._store.get_thread(thread.id) if thread.status == ThreadStatus.BOT else thread
            if current is None or current.queued_by != message.id:
                return Decision(DecisionAction.WAITING, "already_queued", thread.id)
            # this very message queued the thread before a crash: finish what it started
        if message.meta.get("no_auto_reply"):
            return Decision(DecisionAction.QUEUED, str(message.meta["no_auto_reply"]), thread.id)
        notice = await self._outbox.enqueue_reply(
            dedup_key=f"{message.id}:queued-notice",
            thread=thread,
            to=_reply_address(message, thread),
            text=self._queued_notice,
            sender={"kind": str(SenderKind.SYSTEM)},
            in_reply_to=message.id,
        )
        return Decision(DecisionAction.QUEUED, reason, thread.id, replies=(notice.id,))

    async def _record_consent(self, message: Message, keyword: Mapping[str, Any]) -> None:
        """STOP and START change what the customer may be sent on this channel, whoever holds
        the thread; the newest keyword wins however dispatches interleave."""
        if keyword.get("kind") in ("stop", "start"):
            await self._store.set_consent(
                message.account_id, message.channel, str(message.sender.get("address", "")),
                str(keyword["kind"]), epoch_ms(message.created_at), message.id,
            )

    async def _answer_keyword(self, message: Message, thread: Thread, keyword: Mapping[str, Any]) -> Decision:
        replies: tuple[str, ...] = ()
        if keyword.get("reply"):
            reply = await self._outbox.enqueue_reply(
                dedup_key=f"{message.id}:keyword-reply",
                thread=thread,
                to=_reply_address(message, thread),
                text=str(keyword["reply"]),
                sender={"kind": str(SenderKind.SYSTEM)},
                in_reply_to=message.id,
            )
            replies = (reply.id,)
        return Decision(DecisionAction.ANSWERED, f"keyword:{keyword.get('kind')}", thread.id, replies)


def _reply_address(message: Message, thread: Thread) -> Identity:
    return Identity(thread.channel, thread.address or str(message.sender.get("address", "")))


class DispatchSweeper:
    """Re-dispatches inbound messages whose dispatch never finished (their process died)."""

    def __init__(self, store: Store, dispatcher: Dispatcher, interval: float, lease: timedelta) -> None:
        self._store = store
        self._dispatcher = dispatcher
        self._interval = interval
        self._lease = lease

    async def sweep_once(self) -> int:
        """Dispatch every overdue message now; returns how many."""
        done = 0
        while (message := await self._store.claim_undispatched(utcnow(), self._lease)) is not None:
            log_event(log, "dispatch.recovered", logging.WARNING, message=message.id)
            try:
                await self._dispatcher.dispatch(message)
            except StoreUnavailable:
                raise
            except Exception:
                log.exception("dispatch.recovery_failed", extra={"omnirouter_fields": {"message": message.id}})
            done += 1
        return done

    async def run(self) -> None:
        while True:
            try:
                await self.sweep_once()
            except StoreUnavailable:
                log_event(log, "dispatch.sweep_store_unavailable", logging.WARNING)
            await asyncio.sleep(self._interval)
