"""Stopping background tasks at shutdown without ever hanging on one that will not stop."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from bot.logs import log_event

log = logging.getLogger("omnirouter.app")


async def stop_tasks(tasks: Iterable[asyncio.Task[object]], timeout: float = 5.0) -> None:
    """Cancel ``tasks`` and wait up to ``timeout`` for them to end; a task that swallows its
    cancellation (a driver retrying a lost connection) is logged and left behind, so shutdown
    always completes."""
    pending = [task for task in tasks if not task.done()]
    for task in pending:
        task.cancel()
    if not pending:
        return
    _, stuck = await asyncio.wait(pending, timeout=timeout)
    for task in stuck:
        log_event(log, "shutdown.task_stuck", logging.WARNING, task=task.get_name())
