"""The leased-queue worker loop told to stop: it ends between two leases, never inside one, so an
item leased in the store always has a task to work it."""

from __future__ import annotations

import asyncio

from bot.router.leasing import LoopStop, lease_and_work
from bot.tasks import stop_tasks


async def test_told_to_stop_while_a_lease_is_in_flight_it_works_that_item_and_ends() -> None:
    answer: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
    leases = 0
    worked: list[str] = []
    slots = asyncio.Semaphore(2)
    wake = asyncio.Event()
    stop = LoopStop(wake)
    in_flight: set[asyncio.Task[None]] = set()

    async def lease() -> str | None:
        nonlocal leases
        leases += 1
        return await answer

    async def work(item: str) -> None:
        worked.append(item)
        slots.release()

    loop = asyncio.create_task(
        lease_and_work(
            lease,
            work,
            slots=slots,
            wake=wake,
            poll_interval=60,
            in_flight=in_flight,
            on_outage=lambda: None,
            stop=stop,
        )
    )
    try:
        await asyncio.sleep(0.05)
        stopping = asyncio.create_task(stop(5))
        await asyncio.sleep(0.05)
        assert not stopping.done()  # it waits for the lease in flight
        answer.set_result("item-1")  # the store answers after the stop was asked for
        await asyncio.wait_for(stopping, 5)
        assert loop.done() and not loop.cancelled()
        await asyncio.gather(*in_flight)
        assert worked == ["item-1"] and leases == 1
    finally:
        await stop_tasks([loop])


async def test_an_idle_loop_told_to_stop_ends_at_once_without_leasing_again() -> None:
    leases = 0
    wake = asyncio.Event()
    stop = LoopStop(wake)

    async def lease() -> None:
        nonlocal leases
        leases += 1

    async def work(item: None) -> None:  # nothing is leased: never called
        raise AssertionError(item)

    loop = asyncio.create_task(
        lease_and_work(
            lease,
            work,
            slots=asyncio.Semaphore(1),
            wake=wake,
            poll_interval=60,
            in_flight=set(),
            on_outage=lambda: None,
            stop=stop,
        )
    )
    try:
        await asyncio.sleep(0.05)
        assert leases == 1  # it looked once, found nothing and sleeps until woken (a minute)
        await asyncio.wait_for(stop(5), 1)  # woken by the request, not after the minute
        assert loop.done() and leases == 1
    finally:
        await stop_tasks([loop])
