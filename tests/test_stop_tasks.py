"""Stopping tasks at shutdown: one that swallows a cancellation is asked again; none hangs it."""

from __future__ import annotations

import asyncio
import contextlib

from bot.tasks import stop_tasks


async def test_a_task_that_swallows_a_cancellation_is_cancelled_again() -> None:
    swallowed = 0

    async def resuming() -> None:  # as a change stream that resumes after an error does
        nonlocal swallowed
        while True:
            try:
                await asyncio.sleep(0.01)
            except asyncio.CancelledError:
                if swallowed:
                    raise
                swallowed += 1
                asyncio.current_task().uncancel()  # type: ignore[union-attr]

    task = asyncio.create_task(resuming())
    await asyncio.sleep(0.02)
    await asyncio.wait_for(stop_tasks([task], timeout=5, every=0.05), 5)
    assert task.cancelled() and swallowed == 1


async def test_a_task_cleaning_up_on_its_way_out_is_not_cut_short_at_once() -> None:
    cleaned = asyncio.Event()

    async def tidy() -> None:
        try:
            await asyncio.sleep(60)
        finally:
            await asyncio.sleep(0.3)  # e.g. releasing its leases in the store
            cleaned.set()

    task = asyncio.create_task(tidy())
    await asyncio.sleep(0.02)
    await stop_tasks([task], timeout=2)
    assert cleaned.is_set() and task.cancelled()


async def test_a_task_that_will_not_stop_is_left_behind_within_the_timeout() -> None:
    release = asyncio.Event()

    async def stubborn() -> None:
        while not release.is_set():
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(0.01)
            asyncio.current_task().uncancel()  # type: ignore[union-attr]

    task = asyncio.create_task(stubborn())
    await asyncio.sleep(0.02)  # running
    started = asyncio.get_running_loop().time()
    await stop_tasks([task], timeout=0.3, every=0.05)
    assert not task.done() and asyncio.get_running_loop().time() - started < 2
    release.set()
    await asyncio.wait_for(task, 5)
