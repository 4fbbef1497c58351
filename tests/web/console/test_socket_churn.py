"""Console pages opened and closed quickly: an update on its way to a socket that is closing is
dropped quietly. ("Task exception was never retrieved … Cannot write to closing transport" was
logged for it.)"""

from __future__ import annotations

import asyncio
import gc
import logging

import pytest
from aiohttp.test_utils import TestClient

from bot.web.keys import FIRST_ADMIN
from tests.router.test_queue import customer_writes
from tests.web.console.test_console import log_in


async def test_updates_to_sockets_closing_under_them_leave_no_unretrieved_error(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    login, password = client.server.app[FIRST_ADMIN]  # type: ignore[misc]
    await log_in(client, login, password)
    with caplog.at_level(logging.DEBUG):
        for n in range(30):
            ws = await client.ws_connect("/console/ws")
            await customer_writes(client.server.app, f"churn-{n}", "an update for the open pages")
            if n % 2:
                await ws.close()
            else:  # the browser went away without a close frame
                ws._response.connection.transport.abort()  # type: ignore[union-attr]
        await asyncio.sleep(1)  # the pending updates meet the closed sockets
        gc.collect()  # an unretrieved task error is reported when the task is collected
        await asyncio.sleep(0.1)
    unretrieved = [r.getMessage() for r in caplog.records if "never retrieved" in r.getMessage()]
    assert unretrieved == []
    assert not any(r.levelno >= logging.ERROR for r in caplog.records if r.name.startswith("omnirouter.web"))
