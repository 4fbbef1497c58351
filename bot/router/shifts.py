"""Agent presence and the timesheet: a shift starts and stops with the console's button.

Starting a shift puts the agent online (their load recounted from the store while no one can
assign to them), records the shift, and lets auto-assignment send work. Stopping records the end
and duration, takes the agent offline and, with ``queue.requeue_on_shift_end``, hands their open
conversations back to the queue. The browser's location is stored only at those two presses,
and only where the account enables it.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from bot.logs import log_event
from bot.router.queue import Queue
from conversations.agent_models import Agent, Presence, Shift
from conversations.ids import new_id
from conversations.models import utcnow
from conversations.repositories import Repositories

log = logging.getLogger("omnirouter.router.shifts")


def read_location(lat: Any, lon: Any, accuracy: Any = None) -> dict[str, float] | None:
    """A location from the browser, or ``None`` if absent or not a real coordinate."""
    try:
        point = {"lat": float(lat), "lon": float(lon)}
        if accuracy not in (None, ""):
            point["accuracy"] = float(accuracy)
    except (TypeError, ValueError):
        return None
    if not all(math.isfinite(v) for v in point.values()):
        return None
    if not (-90 <= point["lat"] <= 90 and -180 <= point["lon"] <= 180):
        return None
    return point


class Shifts:
    def __init__(self, store: Repositories, queue: Queue, requeue_on_end: bool = True) -> None:
        self._store = store
        self._queue = queue
        self._requeue_on_end = requeue_on_end

    async def start(self, agent: Agent, location: dict[str, float] | None = None) -> Shift:
        load = await self._store.queue.count_assigned(agent.id)
        await self._store.agents.go_online(agent.id, load, Presence.ONLINE)
        routing = await self._queue.routing(agent.account_id)
        shift = await self._store.agents.open_shift(
            Shift(
                id=new_id("shf"),
                account_id=agent.account_id,
                agent_id=agent.id,
                agent_login=agent.login,
                started_at=utcnow(),
                open_key=agent.id,
                start_location=location if routing.record_location else None,
            )
        )
        await self._store.events.emit_event(agent.account_id, "presence", utcnow(), agent_id=agent.id)
        log_event(log, "shift.started", agent=agent.id, shift=shift.id)
        await self._queue.auto_assign(agent.account_id)
        return shift

    async def stop(self, agent: Agent, location: dict[str, float] | None = None) -> Shift | None:
        await self._store.agents.set_presence(agent.id, Presence.OFFLINE)
        routing = await self._queue.routing(agent.account_id)
        shift = await self._store.agents.close_shift(agent.id, utcnow(), location if routing.record_location else None)
        if self._requeue_on_end:
            await self._queue.requeue_agent(agent)
        await self._store.events.emit_event(agent.account_id, "presence", utcnow(), agent_id=agent.id)
        log_event(log, "shift.ended", agent=agent.id, shift=shift.id if shift else None)
        return shift

    async def set_away(self, agent: Agent, away: bool) -> bool:
        """Away: keeps the conversations held, gets no new ones. ``False`` if not on shift."""
        if away:
            changed = await self._store.agents.set_presence(agent.id, Presence.AWAY, only_from=Presence.ONLINE)
        else:
            changed = await self._store.agents.set_presence(agent.id, Presence.ONLINE, only_from=Presence.AWAY)
            if changed:
                await self._queue.auto_assign(agent.account_id)
        await self._store.events.emit_event(agent.account_id, "presence", utcnow(), agent_id=agent.id)
        return changed
