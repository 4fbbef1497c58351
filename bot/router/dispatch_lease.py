"""The dispatch lease of an inbound message, renewed while the message is decided, so that a slow
decision is not taken over by a sweeper and made twice (the sweeper takes over a message whose
lease ran out: its process died)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TypeVar

from bot.logs import log_event
from bot.tasks import wait_set
from conversations.errors import StoreClosed, StoreError
from conversations.models import utcnow
from conversations.repositories import Repositories

log = logging.getLogger("omnirouter.router.dispatch")  # the dispatcher's log lines, wherever they are made
T = TypeVar("T")


async def renewing_dispatch_lease(
    store: Repositories, message_id: str, lease: timedelta, decide: Callable[[], Awaitable[T]]
) -> T:
    """``decide()`` awaited while the message's dispatch ``lease`` is kept."""
    # almost every message is decided in milliseconds: a renewal task starts only for one still
    # being decided a third of the lease in (no task per message on the hot path)
    renewal: list[asyncio.Task[None]] = []
    finished = asyncio.Event()

    def start_renewing() -> None:
        renewal.append(asyncio.create_task(_keep_lease(store, message_id, lease, finished)))

    timer = asyncio.get_running_loop().call_later(lease.total_seconds() / 3, start_renewing)
    try:
        return await decide()
    finally:
        timer.cancel()
        # told to stop, never cancelled: cancelled inside a store call, the driver can keep a
        # connection-pool lock every later store call waits for. A renewal in flight completes.
        finished.set()
        if renewal:
            await asyncio.wait(renewal)


async def _keep_lease(store: Repositories, message_id: str, lease: timedelta, finished: asyncio.Event) -> None:
    """Renew the message's dispatch lease now and every third of it until ``finished`` is set or
    the store closes. A renewal that fails is tried again at the next third: ending the renewals
    would let a sweeper take the message over and decide it a second time."""
    while not finished.is_set():
        try:
            if not await store.messages.renew_dispatch(message_id, utcnow(), lease):
                return
        except StoreClosed:
            return
        except StoreError as exc:  # an outage: the next renewal may get through
            log_event(log, "dispatch.lease_not_renewed", logging.WARNING, message=message_id, error=type(exc).__name__)
        except Exception:  # anything else is logged with its traceback, and tried again too
            log.exception("dispatch.lease_not_renewed", extra={"omnirouter_fields": {"message": message_id}})
        await wait_set(finished, lease.total_seconds() / 3)
