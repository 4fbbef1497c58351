"""How the store client waits on a store that is slow rather than gone: a stall shorter than the
socket timeout delays the operations in flight, it does not fail them."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest

from conversations.embedded import EmbeddedMongo
from conversations.repositories import Repositories
from tests import factories


@pytest.mark.slow
async def test_a_store_stalled_past_the_selection_timeout_but_not_the_socket_timeout_fails_nothing(
    tmp_path: Path,
) -> None:
    """The store stops answering for 10.25 s with reads in flight, a 4 s store timeout (12 s on a
    socket) and heartbeats every 0.5 s: the driver's heartbeat must not give up before the
    operations do. With the heartbeat's timeout at 4 s it declared the server down mid-stall,
    cancelled every operation in flight (PyMongo clears the pool interrupting the connections in
    use) and the reads' one retry found no server within the 4 s of server selection: a store
    that is slow for a moment, as on a loaded machine, became an outage. (The stall is longer than
    a heartbeat's timeout and a retry's server selection together, 8.5 s at most, and 1.75 s
    short of the socket timeout, for a loaded machine's store to answer in.)"""
    server = EmbeddedMongo(tmp_path / "store")
    await server.start()
    store = Repositories.connect(f"{server.uri}&heartbeatFrequencyMS=500", "stalled", timeout_ms=4000)
    try:
        await factories.account(store, "acme")
        pid = int((tmp_path / "store" / "nx-27017.pid").read_text())
        await asyncio.sleep(1.2)  # the monitor has its connection and its rhythm
        os.kill(pid, signal.SIGSTOP)
        try:
            reads = [asyncio.create_task(store.accounts.get_account("acme")) for _ in range(4)]
            await asyncio.sleep(10.25)
        finally:
            os.kill(pid, signal.SIGCONT)
        found = await asyncio.gather(*reads, return_exceptions=True)
        assert [getattr(account, "id", account) for account in found] == ["acme"] * 4
    finally:
        await store.close()
        await server.stop()
