"""The sweeper: inbound messages whose dispatch never finished (their process died, or a
dispatch outlived its lease without renewing it) are dispatched again by any router process.
The dispatch is idempotent (``bot/router/dispatch.py``), so a message decided twice sends once."""

from __future__ import annotations

import logging
from datetime import timedelta

from bot.logs import log_event
from bot.router.dispatch import Dispatcher
from bot.tasks import pause
from conversations.errors import StoreClosed, StoreUnavailable
from conversations.models import utcnow
from conversations.repositories import Repositories

log = logging.getLogger("omnirouter.router.dispatch")


class DispatchSweeper:
    """Re-dispatches inbound messages whose dispatch never finished (their process died)."""

    def __init__(self, store: Repositories, dispatcher: Dispatcher, interval: float, lease: timedelta) -> None:
        self._store = store
        self._dispatcher = dispatcher
        self._interval = interval
        self._lease = lease

    async def sweep_once(self) -> int:
        """Dispatch every overdue message now; returns how many."""
        done = 0
        while (message := await self._store.messages.claim_undispatched(utcnow(), self._lease)) is not None:
            if self._dispatcher.deciding(message.id):  # still ours: its lease ran out in a store outage
                continue
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
            except StoreClosed:  # the process is stopping
                return
            except Exception:  # an unexpected store answer must not end the sweeper for good
                log.exception("dispatch.sweep_failed")
            await pause(self._interval)
