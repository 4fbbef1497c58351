"""The worker loop of everything sent from a leased queue in the store (the outbox, webhook
deliveries): lease a due item, work it in a task of its own, at most so many at once; when nothing
is due, sleep until woken or until the next poll; ride out a store outage. Told to ``stop``, it
ends between two leases: cancelled, it could end inside one, with an item leased in the store
and no task to work it (an at-most-once send would then be reported interrupted, never sent)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from bot.tasks import pause, wait_set
from conversations.errors import StoreClosed, StoreUnavailable

T = TypeVar("T")
log = logging.getLogger("omnirouter.router.leasing")


class LoopStop:
    """Asks a :func:`lease_and_work` loop to end between two leases, and waits for it to."""

    def __init__(self, wake: asyncio.Event) -> None:
        self._wake = wake  # the loop's: an idle loop sees the request at once
        self.asked = False
        self.loop: asyncio.Task[Any] | None = None  # the loop's task, once it runs

    async def __call__(self, timeout: float) -> None:
        """Ask, then wait up to ``timeout`` for the loop to end (``asyncio.wait`` does not raise
        for a caller whose own cancellation is pending: the rest of a shutdown runs)."""
        self.asked = True
        self._wake.set()
        if self.loop is not None and not self.loop.done():
            await asyncio.wait({self.loop}, timeout=timeout)


async def lease_and_work(
    lease: Callable[[], Awaitable[T | None]],
    work: Callable[[T], Coroutine[Any, Any, None]],
    *,
    slots: asyncio.Semaphore,
    wake: asyncio.Event,
    poll_interval: float,
    in_flight: set[asyncio.Task[None]],
    on_outage: Callable[[], None],
    stop: LoopStop | None = None,
) -> None:
    """Run until cancelled or, between two leases, until ``stop`` is asked. ``work`` owns a slot
    and must release it when done."""
    if stop is not None:
        stop.loop = asyncio.current_task()
    while True:
        await slots.acquire()
        if stop is not None and stop.asked:
            slots.release()
            return
        wake.clear()  # before the query: a wake-up arriving while it runs is kept, not lost
        try:
            item = await lease()
        except StoreUnavailable:
            slots.release()
            on_outage()
            await pause(max(poll_interval, 1.0))
            continue
        except StoreClosed:  # the process is stopping (and this task missed its cancellation)
            slots.release()
            return
        except Exception:  # an unexpected store answer must not end the worker for good
            slots.release()
            log.exception("leasing.lease_failed")
            await pause(max(poll_interval, 1.0))
            continue
        except BaseException:
            slots.release()
            raise
        if item is None:
            slots.release()
            await wait_set(wake, poll_interval)
            continue
        task = asyncio.create_task(work(item))
        in_flight.add(task)
        task.add_done_callback(in_flight.discard)
