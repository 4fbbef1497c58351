"""A write command of several documents commits once on the embedded store, and its answer says
what the store holds: on the real server and driver."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from nx_27017.handler import NeoSQLiteHandler
from pymongo import AsyncMongoClient, InsertOne, UpdateOne
from pymongo.errors import BulkWriteError, OperationFailure

from conversations._nx_child import build_handler, serve
from conversations.embedded import socket_uri


@dataclass
class Served:
    handler: NeoSQLiteHandler
    client: AsyncMongoClient[dict[str, Any]]

    def sqlite(self, database: str) -> sqlite3.Connection:
        db: sqlite3.Connection = self.handler._conns[database].db
        return db

    def log_frames(self, database: str) -> int:
        """The pages written to the database's write-ahead log since it was last emptied."""
        return int(self.sqlite(database).execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1])

    def empty_the_log(self, database: str) -> None:
        self.sqlite(database).execute("PRAGMA wal_checkpoint(TRUNCATE)")


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    handler = build_handler(str(tmp_path))
    with tempfile.TemporaryDirectory(prefix="nx") as sockets:  # a socket path short enough
        socket = f"{sockets}/nx-27017.sock"
        started = asyncio.Event()
        server = asyncio.create_task(serve(handler, socket, lambda _: started.set()))
        await started.wait()
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
            socket_uri(Path(socket)), serverSelectionTimeoutMS=5000
        )
        try:
            yield Served(handler, client)
        finally:
            await client.close()
            server.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await server
            handler.close_all()


async def stored(served: Served, collection: str) -> list[Any]:
    return sorted([d["_id"] async for d in served.client.commits[collection].find({}, {"_id": 1})], key=str)


async def test_a_command_of_several_documents_writes_the_log_once_for_them(served: Served) -> None:
    things = served.client.commits.things
    await things.create_index("n")
    await things.insert_one({"_id": "first", "n": 0})  # the database open, the collection there
    served.empty_the_log("commits")
    for n in range(20):
        await things.insert_one({"_id": f"one{n}", "n": n})
    one_at_a_time = served.log_frames("commits")
    served.empty_the_log("commits")
    await things.insert_many([{"_id": f"many{n}", "n": n} for n in range(20)])
    inserted_together = served.log_frames("commits")
    served.empty_the_log("commits")
    await things.bulk_write([UpdateOne({"_id": f"many{n}"}, {"$set": {"n": n + 1}}) for n in range(20)])
    updated_together = served.log_frames("commits")

    assert one_at_a_time >= 20  # each commit writes its pages to the log
    assert inserted_together * 4 <= one_at_a_time
    assert updated_together * 4 <= one_at_a_time
    assert [d["n"] async for d in things.find({"_id": {"$in": ["many0", "many19"]}}).sort("_id", 1)] == [1, 20]


@pytest.mark.parametrize("ordered", [True, False])
async def test_a_duplicate_among_them_fails_alone(served: Served, ordered: bool) -> None:
    things = served.client.commits.things
    await things.insert_one({"_id": "b"})
    with pytest.raises(BulkWriteError) as raised:
        await things.insert_many([{"_id": "a"}, {"_id": "b"}, {"_id": "c"}], ordered=ordered)

    assert raised.value.details["nInserted"] == (1 if ordered else 2)
    assert [e["index"] for e in raised.value.details["writeErrors"]] == [1]
    assert await stored(served, "things") == (["a", "b"] if ordered else ["a", "b", "c"])


@pytest.mark.parametrize("ordered", [True, False])
async def test_an_update_that_fails_among_them_fails_alone(served: Served, ordered: bool) -> None:
    things = served.client.commits.things
    await things.insert_many([{"_id": "a", "n": 1}, {"_id": "b", "n": "text"}, {"_id": "c", "n": 1}])
    with pytest.raises(BulkWriteError) as raised:
        await things.bulk_write([UpdateOne({"_id": i}, {"$inc": {"n": 1}}) for i in ("a", "b", "c")], ordered=ordered)

    assert [e["index"] for e in raised.value.details["writeErrors"]] == [1]
    assert [d["n"] async for d in things.find().sort("_id", 1)] == [2, "text", 1 if ordered else 2]


@pytest.mark.parametrize("ordered", [True, False])
async def test_a_full_disk_under_a_command_leaves_none_of_it_and_says_so(served: Served, ordered: bool) -> None:
    things = served.client.commits.things
    await things.insert_one({"_id": "first"})
    db = served.sqlite("commits")
    pages = db.execute("PRAGMA page_count").fetchone()[0]
    db.execute(f"PRAGMA max_page_count = {pages + 3}")  # room for a few of the documents, not all
    batch = [InsertOne({"_id": n, "text": "x" * 3000}) for n in range(20)]
    try:
        with pytest.raises(OperationFailure) as raised:
            await things.bulk_write(batch, ordered=ordered)
    finally:
        db.execute("PRAGMA max_page_count = 1073741823")

    assert "none is stored" in str(raised.value) and "full" in str(raised.value)
    assert await stored(served, "things") == ["first"]  # the answer is what the store holds
    await things.bulk_write(batch, ordered=ordered)  # the same command again, with room: all of it
    assert len(await stored(served, "things")) == 21


async def test_a_database_another_connection_holds_answers_an_error_and_writes_nothing(served: Served) -> None:
    things = served.client.commits.things
    await things.insert_one({"_id": "first"})
    other = sqlite3.connect(str(Path(served.handler._db_file("commits"))), isolation_level=None)
    try:
        # another connection holds the write lock for longer than the store waits for it
        other.execute("BEGIN IMMEDIATE")
        served.sqlite("commits").execute("PRAGMA busy_timeout = 50")
        with pytest.raises(OperationFailure):
            await things.insert_many([{"_id": "a"}, {"_id": "b"}])
    finally:
        other.execute("ROLLBACK")
        other.close()
        served.sqlite("commits").execute("PRAGMA busy_timeout = 5000")
    assert await stored(served, "things") == ["first"]
