"""Phone calls in the conversation: each ended call becomes an event in the contact's thread.

A call is recorded once (its id derives from the provider's call id) in the contact's open
thread on the channel agents answer phone contacts on (SMS when it is configured), opening one if
needed; the number merges the caller with the contact who texts or writes on WhatsApp from it.
A missed call from a customer queues that thread for a human with the reason ``missed_call``: the
agent queue's "call back" item. Call events are not dispatched: nobody answers a call with text.
"""

from __future__ import annotations

import logging

from bot.logs import log_event
from conversations.ids import derived_id
from conversations.models import utcnow
from conversations.repositories import Repositories
from conversations.thread_models import (
    Decision,
    DecisionAction,
    DispatchState,
    Message,
    SenderKind,
    Thread,
    ThreadStatus,
)
from conversations.traffic import CallEvent, Direction, Identity

log = logging.getLogger("omnirouter.router.calls")

MISSED_CALL = "missed_call"


def describe_call(event: CallEvent) -> str:
    """The line agents read in the thread."""
    if event.missed:
        return f"Missed call from {event.customer} ({event.status.replace('-', ' ')})"
    if event.direction == Direction.IN:
        return f"Call from {event.customer}, {_duration(event.duration)}"
    if event.answered:
        return f"Call to {event.customer}, {_duration(event.duration)}"
    return f"Call to {event.customer} not answered ({event.status.replace('-', ' ')})"


def _duration(seconds: int) -> str:
    minutes, rest = divmod(seconds, 60)
    return f"{minutes} min {rest} s" if minutes else f"{rest} s"


class CallRecorder:
    """Records call events; the voice channel's counterpart of the inbound recorder."""

    def __init__(self, store: Repositories) -> None:
        self._store = store

    async def record(self, event: CallEvent, thread_channel: str) -> tuple[Message, bool]:
        """Store ``event`` (made storable by the sink) once, in the caller's thread on
        ``thread_channel``; returns ``(message, duplicate)``. ``StoreUnavailable`` when the store is
        down (the provider retries the callback)."""
        store, now = self._store, utcnow()
        message_id = derived_id("msg", f"call|{event.account_id}|{event.channel}|{event.external_id}")
        earlier = await store.messages.get_message(message_id)
        if earlier is not None:
            return earlier, True
        contact_id = await store.contacts.find_or_create_contact(
            event.account_id, Identity(event.channel, event.customer), None, now, phone=event.phone
        )
        thread = await store.threads.touch_open_thread(contact_id, thread_channel, now, event.inbox_id)
        if thread is None:
            thread = await store.threads.open_thread(
                event.account_id, contact_id, Identity(thread_channel, event.customer), now, event.inbox_id
            )
        decision = await self._call_back(event, thread, message_id) if event.missed else None
        message = Message(
            id=message_id,
            account_id=event.account_id,
            thread_id=thread.id,
            contact_id=contact_id,
            direction=event.direction,
            channel=event.channel,
            text=describe_call(event),
            created_at=now,
            sender={
                "kind": str(SenderKind.CUSTOMER if event.direction == Direction.IN else SenderKind.SYSTEM),
                "address": event.customer,
            },
            external_id=event.external_id,
            dispatch_state=DispatchState.DONE,
            decision=decision.to_doc() if decision else None,
            meta={
                "call": {
                    "status": event.status,
                    "answered": event.answered,
                    "duration": event.duration,
                    "missed": event.missed,
                    "at": event.at,
                },
                "call_back": event.missed,
            },
        )
        stored, duplicate = await store.messages.insert_message_once(message)
        log_event(log, "call.recorded", thread=thread.id, message=stored.id, missed=event.missed, duplicate=duplicate)
        return stored, duplicate

    async def _call_back(self, event: CallEvent, thread: Thread, message_id: str) -> Decision:
        """Put the thread in the agent queue so someone calls back (if nobody has it yet)."""
        if thread.status == ThreadStatus.ASSIGNED:
            return Decision(DecisionAction.TO_AGENT, MISSED_CALL, thread.id)
        queued = await self._store.queue.queue_thread(thread.id, MISSED_CALL, message_id, utcnow())
        action = DecisionAction.QUEUED if queued else DecisionAction.WAITING
        return Decision(action, MISSED_CALL, thread.id)
