"""The decision point: who answers an inbound message.

* thread assigned to an agent -> the agent's (the console shows it);
* otherwise, with no NLU configured -> the human queue, and the customer is told once, politely.

Dispatch may run twice for one message (a process died after deciding but before recording the
decision, and the sweeper took over). Every effect is idempotent: queueing is a guarded status
change, and replies carry a dedup key, so a replay sends nothing twice.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import timedelta

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
    utcnow,
)
from conversations.store import Store, StoreError, StoreUnavailable

log = logging.getLogger("omnirouter.router.dispatch")

NO_NLU = "no_nlu"
DIRECT = "direct_channel"  # the channel is configured to go straight to humans


class Dispatcher:
    def __init__(
        self, store: Store, queue: Queue, outbox: Outbox, metrics: Metrics, queued_notice: str
    ) -> None:
        self._store = store
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
        if thread.status == ThreadStatus.ASSIGNED:
            decision = Decision(DecisionAction.TO_AGENT, "assigned", thread.id)
        else:
            reason = DIRECT if self._queue.straight_to_humans(thread.channel) else NO_NLU
            decision = await self._to_queue(message, thread, reason)
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

    async def _to_queue(self, message: Message, thread: Thread, reason: str) -> Decision:
        queued_now = thread.status == ThreadStatus.BOT and await self._queue.escalate(
            thread, reason, by_message=message.id
        )
        if not queued_now:
            current = await self._store.get_thread(thread.id) if thread.status == ThreadStatus.BOT else thread
            if current is None or current.queued_by != message.id:
                return Decision(DecisionAction.WAITING, "already_queued", thread.id)
            # this very message queued the thread before a crash: finish what it started
        notice = await self._outbox.enqueue_reply(
            dedup_key=f"{message.id}:queued-notice",
            thread=thread,
            to=_reply_address(message, thread),
            text=self._queued_notice,
            sender={"kind": str(SenderKind.SYSTEM)},
            in_reply_to=message.id,
        )
        return Decision(DecisionAction.QUEUED, reason, thread.id, replies=(notice.id,))


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
