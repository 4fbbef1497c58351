"""What happened to a thread, written down once for every action on it: the timeline entry the
console shows (and the audit-log entry of an agent's action), the live event that refreshes
consoles, and the webhook event subscribers receive. The queue and the services record through
this one place, so every way in leaves the same trail."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from bot import audit
from conversations.agent_models import Agent
from conversations.ids import new_id
from conversations.membership import thread_key
from conversations.models import utcnow
from conversations.repositories import Repositories
from conversations.thread_models import Thread, TimelineEntry, TimelineKind

if TYPE_CHECKING:
    from bot.router.webhooks.events import ThreadEvents

SYSTEM = "system"
# the audit log's name for an agent's action, by the timeline entry it makes
AUDITED = {
    TimelineKind.ASSIGNED: "thread.take",
    TimelineKind.TRANSFERRED: "thread.transfer",
    TimelineKind.RESOLVED: "thread.resolve",
    TimelineKind.NOTE: "thread.note",
    TimelineKind.LABELS: "thread.labels",
    TimelineKind.QUEUED: "thread.requeue",
    TimelineKind.REOPENED: "thread.reopen",
}


class ThreadLog:
    def __init__(self, store: Repositories, events: ThreadEvents | None = None) -> None:
        self._store = store
        self._events = events

    async def timeline(
        self,
        thread: Thread,
        kind: TimelineKind,
        actor: Agent | None,
        text: str,
        entry_id: str | None = None,
        **details: Any,
    ) -> None:
        """One entry on the thread's timeline; one with an ``entry_id`` is added once, however often asked."""
        await self._store.queue.add_timeline(
            TimelineEntry(
                id=entry_id or new_id("tl"),
                account_id=thread.account_id,
                thread_id=thread.id,
                contact_id=thread.contact_id,
                kind=str(kind),
                at=utcnow(),
                actor=actor.id if actor else SYSTEM,
                actor_name=actor.name if actor else "",
                text=text,
                details=details,
            )
        )
        if actor is not None:  # an agent's action (the text may be a note: never audited)
            await audit.record(
                self._store,
                thread.account_id,
                actor,
                AUDITED[kind],
                thread.id,
                to=details.get("to"),
                team=details.get("team"),
            )

    async def publish(self, event_type: str, thread: Thread, **data: Any) -> None:
        if self._events is not None:
            await self._events.quietly(event_type, thread, **data)

    async def live(
        self,
        thread: Thread,
        kind: str,
        agent_id: str | None = None,
        *,
        by: str | None = None,
        alert: str | None = None,
        replies: Sequence[str] = (),
    ) -> None:
        """An event for the live consoles. ``by``: the agent who did it (never alerted about it);
        ``alert``: what it tells the thread's agent or team (``customer_message``, ``queued``);
        ``replies``: the outbound messages queued for it (a web chat page that has them all needs
        no read of the thread: bot/handlers/webchat/relay.py)."""
        fields: dict[str, Any] = {"thread_id": thread.id, "inbox": thread_key(thread)}  # who may hear of it
        if replies:
            fields["replies"] = list(replies)
        if agent_id:
            fields["agent_id"] = agent_id
        extra = {"by": by, "alert": alert, "assignee": thread.assignee, "team": thread.team}
        fields.update({key: value for key, value in extra.items() if value})
        await self._store.events.emit_event(thread.account_id, kind, utcnow(), **fields)
