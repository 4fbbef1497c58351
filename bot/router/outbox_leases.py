"""Keeping an outbox item's lease while it is in this process's hands (see ``bot/router/outbox.py``):
renewed before a send that waited for a slot until less than half of it was left, and every third
of it while a send or the record of one is in flight, so that no other worker takes the item over
and sends it a second time. Each renewal is conditional on nobody having leased the item since."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from datetime import timedelta
from typing import Any, TypeVar

from bot.logs import log_event
from bot.tasks import wait_set
from conversations.models import utcnow
from conversations.repositories import Repositories
from conversations.thread_models import OutboxItem

log = logging.getLogger("omnirouter.router.outbox")
T = TypeVar("T")


class LeaseKeeper:
    """Renews the leases of one worker (``owner``) on items it holds."""

    def __init__(
        self, store: Repositories, owner: str, lease: timedelta, spawn: Callable[[Coroutine[Any, Any, None]], None]
    ) -> None:
        self._store = store
        self._owner = owner
        self._lease = lease
        self._spawn = spawn  # starts a task the worker waits for at shutdown

    async def renewed(self, item: OutboxItem) -> OutboxItem | None:
        """``item`` with its lease renewed from now; ``None`` (logged) if it passed on to another
        worker, which sends it then."""
        renewed = await self._store.outbox.renew_outbox_lease(item, self._owner, utcnow(), self._lease)
        if renewed is None:
            log_event(log, "outbox.lease_lost", logging.WARNING, item=item.id)
        return renewed

    async def keeping(self, item: OutboxItem, send: Awaitable[T]) -> T:
        """Await ``send``, renewing the item's lease every third of it meanwhile: a send slower
        than the lease (a large upload), or a record of it that waits for the store, must not be
        leased and sent again by another worker.
        A timer, not a task, waits for the first renewal: most sends end long before it. The
        renewer is told to stop, never cancelled: cancelled inside a store call, the driver can
        keep a connection-pool lock that every later store call then waits for."""
        finished = asyncio.Event()

        def start() -> None:
            self._spawn(self._renew(item, finished))

        timer = asyncio.get_running_loop().call_later(self._lease.total_seconds() / 3, start)
        try:
            return await send
        finally:
            timer.cancel()
            finished.set()  # a renewal in flight completes; none follows

    async def _renew(self, item: OutboxItem, finished: asyncio.Event) -> None:
        while not finished.is_set():
            try:
                if await self.renewed(item) is None:
                    return
            except Exception:  # the store failed: try again at the next renewal
                log.warning(
                    "outbox.lease_renewal_failed", exc_info=True, extra={"omnirouter_fields": {"item": item.id}}
                )
            await wait_set(finished, self._lease.total_seconds() / 3)
