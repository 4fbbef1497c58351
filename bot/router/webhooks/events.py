"""Thread events for the account's webhook subscriptions.

``publish`` stores one delivery per subscription that wants the event (nothing at all when none
does: the subscriptions of an account are cached for a few seconds, so an account without webhooks
costs no store round trip). The event id derives from what caused the event where that can happen
twice — a dispatch replayed after a crash publishes the same ``thread.message`` with the same id,
and the store keeps one delivery — so receivers see each event at least once and can drop repeats
by its id.

Event types: ``thread.created``, ``thread.queued``, ``thread.assigned``, ``thread.resolved``,
``thread.message`` (either direction). The body::

    {"id": "evt_…", "type": "thread.assigned", "account_id": "shop", "created_at": "…",
     "data": {"thread": {…}, "agent": {"id": "agt_…", "name": "Ava"}}}
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

from bot.logs import log_event
from conversations.agent_models import Agent
from conversations.ids import derived_id, new_id
from conversations.models import utcnow
from conversations.repositories import Repositories
from conversations.tenant_models import WebhookSubscription
from conversations.thread_models import Message, Thread

log = logging.getLogger("omnirouter.webhooks")
_CACHE_SECONDS = 5.0


def public_thread(thread: Thread) -> dict[str, Any]:
    """A thread as the API and webhooks show it (without the store's internal keys)."""
    doc = thread.to_json()
    doc.pop("open_key", None)
    return doc


def who(agent: Agent | None) -> dict[str, str] | None:
    return {"id": agent.id, "name": agent.name} if agent is not None else None


class ThreadEvents:
    """Publishes thread events to webhook subscriptions (see the module docstring)."""

    def __init__(self, store: Repositories) -> None:
        self._store = store
        self._subscriptions: dict[str, tuple[float, list[WebhookSubscription]]] = {}
        self.wake: Callable[[], None] = lambda: None  # the sender's, once it runs

    def forget(self, account_id: str) -> None:
        """The account's subscriptions changed: read them again on the next event."""
        self._subscriptions.pop(account_id, None)

    async def _wanting(self, account_id: str, event_type: str) -> list[WebhookSubscription]:
        cached = self._subscriptions.get(account_id)
        if cached is None or cached[0] < time.monotonic():
            cached = (
                time.monotonic() + _CACHE_SECONDS,
                await self._store.webhooks.list_webhooks(account_id, active_only=True),
            )
            self._subscriptions[account_id] = cached
        return [s for s in cached[1] if s.wants(event_type)]

    async def publish(self, event_type: str, thread: Thread, cause: str | None = None, **data: Any) -> str | None:
        """Store the event for every subscription that wants it; returns its id (``None``: nobody
        subscribed). ``cause`` makes the id deterministic: the same cause, the same event."""
        subscriptions = await self._wanting(thread.account_id, event_type)
        if not subscriptions:
            return None
        current = await self._store.threads.get_thread(thread.id) or thread
        event_id = derived_id("evt", f"{event_type}|{cause}") if cause else new_id("evt")
        now = utcnow()
        body = json.dumps(
            {
                "id": event_id,
                "type": event_type,
                "account_id": thread.account_id,
                "created_at": now.isoformat(),
                "data": {"thread": public_thread(current), **{k: v for k, v in data.items() if v is not None}},
            },
            ensure_ascii=False,
            default=str,
        )
        message = data.get("message")
        added = await self._store.webhooks.enqueue_deliveries(
            subscriptions,
            event_id,
            event_type,
            body,
            now,
            thread.id,
            message.get("id") if isinstance(message, dict) else None,
        )
        if added:
            log_event(
                log,
                "webhook.published",
                event_id=event_id,
                type=event_type,
                account=thread.account_id,
                deliveries=added,
            )
            self.wake()
        return event_id

    async def message(self, thread: Thread, message: Message) -> None:
        if await self._wanting(thread.account_id, "thread.message"):  # its JSON only for a subscriber
            await self.publish("thread.message", thread, f"message|{message.id}", message=message.to_json())

    async def quietly(self, event_type: str, thread: Thread, **data: Any) -> None:
        """Publish after an agent's action, which has happened already: a failure is logged, not
        raised (the action stands; the event is lost — see docs/api.md, "Webhooks")."""
        try:
            await self.publish(event_type, thread, None, **data)
        except Exception as exc:
            log_event(
                log,
                "webhook.publish_failed",
                logging.ERROR,
                type=event_type,
                thread=thread.id,
                error=type(exc).__name__,
            )
