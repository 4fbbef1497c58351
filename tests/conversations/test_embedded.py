"""The embedded server's lifecycle: start, persist, lock, stop, thread mode."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest

from conversations.embedded import EmbeddedMongo, EmbeddedStoreError
from conversations.store import Store


async def test_data_survives_a_restart_and_the_child_is_gone_after_stop(tmp_path: Path) -> None:
    server = EmbeddedMongo(tmp_path / "store")
    await server.start()
    pid = int((tmp_path / "store" / "nx-27017.pid").read_text())
    store = Store.connect(server.uri, "persist")
    await store._db.things.insert_one({"_id": "kept"})
    await store.close()
    await server.stop()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # the child process has exited

    again = EmbeddedMongo(tmp_path / "store")
    await again.start()
    store = Store.connect(again.uri, "persist")
    try:
        assert await store._db.things.find_one({"_id": "kept"}) == {"_id": "kept"}
    finally:
        await store.close()
        await again.stop()


async def test_a_second_server_on_the_same_directory_is_refused(tmp_path: Path) -> None:
    first = EmbeddedMongo(tmp_path)
    await first.start()
    try:
        with pytest.raises(EmbeddedStoreError, match="in use by another omnirouter"):
            await EmbeddedMongo(tmp_path).start()
    finally:
        await first.stop()
    second = EmbeddedMongo(tmp_path)  # the lock is released with the first server
    await second.start()
    await second.stop()


async def test_thread_mode_serves_the_same_protocol(tmp_path: Path) -> None:
    server = EmbeddedMongo(tmp_path, mode="thread")
    await server.start()
    store = Store.connect(server.uri, "threaded")
    try:
        await store.ensure_indexes()
        await store.ping()
    finally:
        await store.close()
        await server.stop()


async def test_stop_twice_is_harmless(tmp_path: Path) -> None:
    server = EmbeddedMongo(tmp_path)
    await server.start()
    await server.stop()
    await server.stop()
    assert not server.running


async def test_a_server_left_behind_by_a_dead_router_is_outwaited_and_replaced(tmp_path: Path) -> None:
    """A router that died leaves its server closing (or, stuck, still running) with its pid file
    in place; nx-27017 would refuse to start beside it. The next start waits it out, kills it if it
    lingers, and serves the same data."""
    first = EmbeddedMongo(tmp_path)
    await first.start()
    store = Store.connect(first.uri, "left")
    await store._db.things.insert_one({"_id": "kept"})
    await store.close()
    orphan = first._process
    assert orphan is not None
    first._process = None  # the router "dies": its lock goes, its server stays (SIGSTOP: it cannot exit)
    os.kill(orphan.pid, signal.SIGSTOP)
    await first.stop()
    second = EmbeddedMongo(tmp_path)
    second_start = asyncio.create_task(second.start())
    try:
        await asyncio.wait_for(asyncio.shield(second_start), 1.0)
        raise AssertionError("started beside a live server of the same directory")
    except TimeoutError:
        pass  # it waits for the old server first
    os.kill(orphan.pid, signal.SIGCONT)
    orphan.terminate()  # the death signal of its parent arrives
    await orphan.wait()
    async with asyncio.timeout(30):
        await second_start
    store = Store.connect(second.uri, "left")
    try:
        assert await store._db.things.find_one({"_id": "kept"}) == {"_id": "kept"}
    finally:
        await store.close()
        await second.stop()
