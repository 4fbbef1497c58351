"""The embedded server's lifecycle: start, persist, lock, stop, thread mode."""

from __future__ import annotations

import os
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
