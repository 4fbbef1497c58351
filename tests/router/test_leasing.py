"""The leased-queue worker loop told to stop: it ends between two leases, never inside one, so an
item leased in the store always has a task to work it."""

from __future__ import annotations

import asyncio

from bot.router.leasing import lease_and_work


async def test_told_to_stop_while_a_lease_is_in_flight_it_works_that_item_and_ends() -> None:
    answer: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
    leases = 0
    worked: list[str] = []
    slots = asyncio.Semaphore(2)
    stop, wake = asyncio.Event(), asyncio.Event()
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
    await asyncio.sleep(0.05)
    stop.set()
    wake.set()
    answer.set_result("item-1")  # the store answers after the stop was asked for
    await asyncio.wait_for(loop, 5)
    await asyncio.gather(*in_flight)
    assert worked == ["item-1"] and leases == 1


async def test_an_idle_loop_told_to_stop_ends_at_once_without_leasing() -> None:
    leases = 0
    stop, wake = asyncio.Event(), asyncio.Event()

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
    await asyncio.sleep(0.05)
    assert leases == 1  # it looked once, found nothing and sleeps until woken
    stop.set()
    wake.set()
    await asyncio.wait_for(loop, 5)
    assert leases == 1
