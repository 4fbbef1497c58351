"""Stopping background tasks at shutdown without ever hanging on one that will not stop."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from bot.logs import log_event

log = logging.getLogger("omnirouter.app")


async def stop_tasks(tasks: Iterable[asyncio.Task[object]], timeout: float = 5.0, every: float | None = None) -> None:
    """Cancel ``tasks`` and wait up to ``timeout`` for them to end, cancelling again every
    ``every`` seconds (half the timeout unless given) those still running: a task that swallowed
    its cancellation (a driver retrying a lost connection, a change stream resuming after it)
    usually meets the next one at another await, and a task's own clean-up on its way out has
    that long before a second cancellation cuts it short. One still running at the end is logged
    and left behind, so shutdown always completes."""
    every = timeout / 2 if every is None else every
    pending = {task for task in tasks if not task.done()}
    deadline = asyncio.get_running_loop().time() + timeout
    while pending:
        for task in pending:
            task.cancel()
        left = deadline - asyncio.get_running_loop().time()
        if left <= 0:
            break
        _, pending = await asyncio.wait(pending, timeout=min(every, left))
    for task in pending:
        log_event(log, "shutdown.task_stuck", logging.WARNING, task=task.get_name())


def raise_if_cancelled() -> None:
    """Raise ``CancelledError`` if this task was asked to stop. Something awaited may have caught
    the cancellation and gone on (Python 3.11's ``asyncio.wait_for`` does when what it waits for
    finishes in the same step; a driver retrying a lost connection can): the request stays counted
    on the task, and a worker loop that checks it each round ends instead of running on."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def pause(seconds: float) -> None:
    """A worker loop's pause between rounds, ending the loop if it was asked to stop meanwhile."""
    raise_if_cancelled()
    await asyncio.sleep(seconds)


async def wait_set(event: asyncio.Event, seconds: float) -> bool:
    """Wait up to ``seconds`` for ``event``; True if it was set. Unlike ``asyncio.wait_for`` on
    Python 3.11, a cancellation arriving as the event is set is never lost."""
    raise_if_cancelled()
    try:
        async with asyncio.timeout(seconds):
            await event.wait()
    except TimeoutError:
        return False
    return True
