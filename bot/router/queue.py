"""The human queue: threads waiting for an agent.

Transitions are single atomic updates guarded by the thread's current status, so two router
processes (or two messages of one customer) racing to queue a thread queue it once.
"""

from __future__ import annotations

from conversations.models import Thread, utcnow
from conversations.store import Store


class Queue:
    def __init__(self, store: Store) -> None:
        self._store = store

    async def escalate(self, thread: Thread, reason: str, by_message: str) -> Thread | None:
        """Queue a thread the bot holds; ``None`` if it is not the bot's (already queued)."""
        return await self._store.queue_thread(thread.id, reason, by_message, utcnow())

    async def depth(self, account_id: str | None = None) -> int:
        return await self._store.queue_depth(account_id)
