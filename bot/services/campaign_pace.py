"""How fast a campaign starts its messages: at a pace (the lower of the campaign rate and the
channel's own), and on a channel with a messaging tier (WhatsApp) only while the account may still
write first to one more distinct customer in the rolling 24 hours."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from bot.logs import log_event
from bot.tasks import pause
from conversations.campaigns import Campaign, CampaignsRepository
from conversations.models import utcnow

log = logging.getLogger("omnirouter.services.campaigns")

TIER_WINDOW = timedelta(hours=24)
RECOUNT = 1.0  # seconds a count of the window is trusted (other campaigns of the account write too)


class Pace:
    """At most ``rate`` starts a second: each :meth:`wait` returns no sooner than ``1 / rate``
    after the one before (a late one does not earn a burst)."""

    def __init__(self, rate: float) -> None:
        self._interval = 1.0 / rate
        self._next = time.monotonic()

    async def wait(self) -> None:
        delay = self._next - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        self._next = max(self._next, time.monotonic() - self._interval) + self._interval


class TierGate:
    """One campaign's look at its channel's messaging tier: ``limit`` distinct contacts that the
    account's campaigns write to first in a rolling 24 hours (0: no tier). The store's count is read
    again once the campaign's own budget is spent or a second old; every message started meanwhile
    is counted as one to a new contact."""

    def __init__(
        self,
        campaigns: CampaignsRepository,
        campaign: Campaign,
        limit: int,
        still_sending: Callable[[], Awaitable[bool]],
    ) -> None:
        self._campaigns = campaigns
        self._campaign = campaign
        self._limit = limit
        self._still_sending = still_sending
        self._budget = 0
        self._counted = -RECOUNT  # monotonic time of the last count

    async def allow(self, started: Sequence[asyncio.Future[Any]]) -> bool:
        """Return once one more message may start (at once, mostly); ``False`` if the campaign was
        stopped while it waited. ``started``: the campaign's messages being stored, waited for
        before a count so that the count sees them."""
        if not self._limit:
            return True
        waiting_logged = False
        while self._budget <= 0 or time.monotonic() - self._counted > RECOUNT:
            leaves_first = await self._count(started)
            if self._budget > 0:
                break
            until = (leaves_first or utcnow()) + TIER_WINDOW
            if not waiting_logged:
                log_event(log, "campaign.tier_limit", campaign=self._campaign.id, until=until.isoformat())
                waiting_logged = True
            await pause(min(max((until - utcnow()).total_seconds(), 0.05), RECOUNT))
            if not await self._still_sending():
                return False
        self._budget -= 1
        return True

    async def _count(self, started: Sequence[asyncio.Future[Any]]) -> datetime | None:
        pending = [task for task in started if not task.done()]
        if pending:
            await asyncio.wait(pending)
        written, leaves_first = await self._campaigns.written_first(
            self._campaign.account_id, self._campaign.channel, utcnow() - TIER_WINDOW
        )
        self._budget, self._counted = self._limit - written, time.monotonic()
        return leaves_first
