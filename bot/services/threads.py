"""What an agent (in the console) or an API caller does to a thread: take it, take the next one,
transfer it (to an agent, or a team's queue), resolve it, add a note, set its labels. One path for
each, over the queue, which checks the thread may be acted on and records the action (timeline,
audit log, live consoles, webhook events)."""

from __future__ import annotations

import logging

from bot.router.queue import Queue
from bot.router.satisfaction import Satisfaction
from conversations.agent_models import Agent
from conversations.thread_models import Thread

log = logging.getLogger("omnirouter.services.threads")


class ThreadActions:
    def __init__(self, queue: Queue, satisfaction: Satisfaction | None = None) -> None:
        self._queue = queue
        self._satisfaction = satisfaction

    async def take(self, agent: Agent, thread_id: str) -> Thread:
        return await self._queue.take(agent, thread_id)

    async def take_next(self, agent: Agent) -> Thread | None:
        return await self._queue.take_next(agent)

    async def transfer(
        self,
        thread_id: str,
        by: Agent,
        *,
        to_agent: str | None = None,
        to_team: str | None = None,
        note: str = "",
        fallback: bool = True,
    ) -> Thread:
        return await self._queue.transfer(
            thread_id, by, to_agent=to_agent, to_team=to_team, note=note, fallback=fallback
        )

    async def resolve(self, thread_id: str, by: Agent) -> Thread:
        """Resolve the thread; its customer is then asked to rate it (if the account asks)."""
        thread = await self._queue.resolve(thread_id, by)
        if self._satisfaction is not None:
            try:
                await self._satisfaction.ask(thread)
            except Exception:  # the conversation is resolved: a question not asked must not undo that
                log.warning(
                    "satisfaction.ask_failed", exc_info=True, extra={"omnirouter_fields": {"thread": thread.id}}
                )
        return thread

    async def note(self, thread_id: str, agent: Agent, text: str) -> None:
        await self._queue.note(thread_id, agent, text)

    async def set_labels(self, thread_id: str, agent: Agent, labels: list[str]) -> Thread:
        return await self._queue.set_labels(thread_id, agent, labels)
