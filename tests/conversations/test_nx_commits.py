"""A write command of several documents commits once on the embedded store, and its answer says
what the store holds: on the real server and driver."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from nx_27017.handler import NeoSQLiteHandler
from pymongo import AsyncMongoClient, DeleteOne, InsertOne, UpdateOne
from pymongo.errors import BulkWriteError, OperationFailure

from conversations._nx_child import build_handler
from conversations._nx_commits import _in_one_transaction
from tests.nx_server import driver_of


@dataclass
class Served:
    handler: NeoSQLiteHandler
    client: AsyncMongoClient[dict[str, Any]]

    def sqlite(self, database: str = "commits") -> sqlite3.Connection:
        db: sqlite3.Connection = self.handler._conns[database].db
        return db

    def log_frames(self) -> int:
        """The pages written to the database's write-ahead log since it was last emptied."""
        return int(self.sqlite().execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1])

    def empty_the_log(self) -> None:
        self.sqlite().execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def stored(self, collection: str) -> list[str]:
        """The ids of ``collection``'s documents as another connection reads them: only what
        was committed, and no transaction left open by the store's."""
        assert not self.sqlite().in_transaction
        other = sqlite3.connect(self.handler._db_file("commits"))
        try:
            return sorted(str(row[0]) for row in other.execute(f'SELECT _id FROM "{collection}"'))
        finally:
            other.close()


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    handler = build_handler(str(tmp_path))
    async with driver_of(handler) as client:
        yield Served(handler, client)


@contextlib.contextmanager
def full_disk(db: sqlite3.Connection, room: int = 3) -> Iterator[None]:
    """The database file may grow by ``room`` pages only: SQLite answers "database or disk is full"."""
    pages = db.execute("PRAGMA page_count").fetchone()[0]
    db.execute(f"PRAGMA max_page_count = {pages + room}")
    try:
        yield
    finally:
        db.execute("PRAGMA max_page_count = 1073741823")


async def test_a_command_of_several_documents_writes_the_log_once_for_them(served: Served) -> None:
    # messages by _id: commands the store runs on its event loop (conversations/_nx_inline.py)
    messages = served.client.commits.messages
    await messages.create_index("n")
    await messages.insert_one({"_id": "first", "n": 0})  # the database open, the collection there
    frames: dict[str, int] = {}

    async def logged(name: str, command: Awaitable[Any]) -> None:
        served.empty_the_log()
        await command
        frames[name] = served.log_frames()
        assert not served.sqlite().in_transaction

    async def one_at_a_time() -> None:
        for n in range(20):
            await messages.insert_one({"_id": f"one{n}", "n": n})

    await logged("one at a time", one_at_a_time())
    await logged("inserted", messages.insert_many([{"_id": f"many{n}", "n": n} for n in range(20)]))
    await logged(
        "updated", messages.bulk_write([UpdateOne({"_id": f"many{n}"}, {"$set": {"n": n + 1}}) for n in range(20)])
    )
    await logged("updated by multi", messages.update_many({"_id": {"$regex": "^many"}}, {"$inc": {"n": 1}}))
    await logged("deleted", messages.bulk_write([DeleteOne({"_id": f"one{n}"}) for n in range(20)]))

    assert frames["one at a time"] >= 20  # each commit writes its pages to the log
    for name in ("inserted", "updated", "updated by multi", "deleted"):
        assert frames[name] * 4 <= frames["one at a time"], frames
    assert [d["n"] async for d in messages.find({"_id": {"$in": ["many0", "many19"]}}).sort("_id", 1)] == [2, 21]
    assert len(served.stored("messages")) == 21


@pytest.mark.parametrize("ordered", [True, False])
async def test_a_duplicate_among_them_fails_alone(served: Served, ordered: bool) -> None:
    things = served.client.commits.things
    await things.insert_one({"_id": "b"})
    with pytest.raises(BulkWriteError) as raised:
        await things.insert_many([{"_id": "a"}, {"_id": "b"}, {"_id": "c"}], ordered=ordered)

    assert raised.value.details["nInserted"] == (1 if ordered else 2)
    assert [e["index"] for e in raised.value.details["writeErrors"]] == [1]
    assert served.stored("things") == (["a", "b"] if ordered else ["a", "b", "c"])


@pytest.mark.parametrize("ordered", [True, False])
async def test_an_update_that_fails_among_them_fails_alone(served: Served, ordered: bool) -> None:
    things = served.client.commits.things
    await things.insert_many([{"_id": "a", "n": 1}, {"_id": "b", "n": "text"}, {"_id": "c", "n": 1}])
    with pytest.raises(BulkWriteError) as raised:
        await things.bulk_write([UpdateOne({"_id": i}, {"$inc": {"n": 1}}) for i in ("a", "b", "c")], ordered=ordered)

    assert [e["index"] for e in raised.value.details["writeErrors"]] == [1]
    assert [d["n"] async for d in things.find().sort("_id", 1)] == [2, "text", 1 if ordered else 2]
    assert not served.sqlite().in_transaction


@pytest.mark.parametrize("ordered", [True, False])
async def test_a_full_disk_under_a_command_leaves_none_of_it_and_says_so(served: Served, ordered: bool) -> None:
    things = served.client.commits.things
    await things.insert_one({"_id": "first"})
    batch = [InsertOne({"_id": n, "text": "x" * 3000}) for n in range(20)]
    with full_disk(served.sqlite()), pytest.raises(OperationFailure) as raised:  # room for a few, not all
        await things.bulk_write(batch, ordered=ordered)

    assert not isinstance(raised.value, BulkWriteError)  # the command failed as a whole
    assert "none is stored" in str(raised.value) and "full" in str(raised.value)
    assert served.stored("things") == ["first"]  # the answer is what the store holds
    await things.bulk_write(batch, ordered=ordered)  # the same command again, with room: all of it
    assert len(served.stored("things")) == 21


async def test_a_collection_s_first_write_is_left_to_nx_27017(served: Served) -> None:
    """A command that creates its collection's table runs as before: a rollback of ours would take
    the table away while neosqlite still knows the collection (its updates then found no table)."""
    fresh = served.client.commits.fresh
    await served.client.commits.things.insert_one({"_id": "first"})  # the database open
    upserts = [UpdateOne({"_id": n}, {"$set": {"text": "x" * 3000}}, upsert=True) for n in range(20)]
    with full_disk(served.sqlite()), pytest.raises(OperationFailure):
        await fresh.bulk_write(upserts, ordered=False)

    written = served.stored("fresh")  # some written before the disk was full, each on its own
    assert written and len(written) < 20
    result = await fresh.bulk_write(upserts, ordered=False)
    assert result.matched_count + result.upserted_count == 20
    assert len(served.stored("fresh")) == 20


async def test_a_clients_transaction_is_left_to_its_session(served: Served) -> None:
    things = served.client.commits.things
    await things.insert_one({"_id": "first"})
    async with served.client.start_session() as session:
        await session.start_transaction()
        await things.insert_many([{"_id": "a"}, {"_id": "b"}], session=session)
        await things.update_many({}, {"$set": {"seen": True}}, session=session)
        await session.abort_transaction()
    assert served.stored("things") == ["first"]  # what the transaction wrote went with it

    async with served.client.start_session() as session:
        await session.start_transaction()
        await things.insert_many([{"_id": "a"}, {"_id": "b"}], session=session)
        await session.commit_transaction()
    assert served.stored("things") == ["a", "b", "first"]


async def test_a_database_another_connection_holds_answers_an_error_and_writes_nothing(served: Served) -> None:
    things = served.client.commits.things
    await things.insert_one({"_id": "first"})
    other = sqlite3.connect(served.handler._db_file("commits"), isolation_level=None)
    try:
        # another connection holds the write lock for longer than the store waits for it
        other.execute("BEGIN IMMEDIATE")
        served.sqlite().execute("PRAGMA busy_timeout = 50")
        with pytest.raises(OperationFailure) as raised:
            await things.insert_many([{"_id": "a"}, {"_id": "b"}])
    finally:
        other.execute("ROLLBACK")
        other.close()
        served.sqlite().execute("PRAGMA busy_timeout = 5000")
    assert not isinstance(raised.value, BulkWriteError)  # not a document's error: the command's
    assert served.stored("things") == ["first"]


def command(collection: str, documents: int) -> dict[str, Any]:
    body = {"insert": collection, "$db": "unit", "documents": [{"_id": n} for n in range(documents)]}
    return {"request_id": 7, "sections": [("body", body)]}


@pytest.fixture
def unit(tmp_path: Path) -> Iterator[tuple[NeoSQLiteHandler, sqlite3.Connection]]:
    handler = build_handler(str(tmp_path))
    handler.handle_insert(command("things", 1))  # the database open and the collection's table there
    try:
        yield handler, handler._conns["unit"].db
    finally:
        handler.close_all()


def test_a_command_that_fails_as_a_whole_leaves_nothing(unit: tuple[NeoSQLiteHandler, sqlite3.Connection]) -> None:
    handler, db = unit

    def writes_then_fails(self: Any, msg: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        db.execute("INSERT INTO things (data, _id) VALUES ('{}', 'half')")
        raise RuntimeError("nx-27017 failed half way")

    with pytest.raises(RuntimeError):
        _in_one_transaction(writes_then_fails)(handler, command("things", 2))
    assert not db.in_transaction
    assert [row[0] for row in db.execute("SELECT _id FROM things")] == ["0"]


def test_a_commit_that_fails_leaves_nothing_and_says_so(unit: tuple[NeoSQLiteHandler, sqlite3.Connection]) -> None:
    handler, db = unit
    db.execute("PRAGMA foreign_keys = ON")  # a deferred key is checked at the commit, which fails
    db.execute("CREATE TABLE parents (id INTEGER PRIMARY KEY)")
    db.execute("CREATE TABLE children (parent INTEGER REFERENCES parents(id) DEFERRABLE INITIALLY DEFERRED)")

    def writes_an_orphan(self: Any, msg: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        db.execute("INSERT INTO things (data, _id) VALUES ('{}', 'kept?')")
        db.execute("INSERT INTO children (parent) VALUES (42)")
        return msg["request_id"], {"ok": 1, "n": 2}

    request_id, answer = _in_one_transaction(writes_an_orphan)(handler, command("things", 2))
    assert request_id == 7 and answer["ok"] == 0 and "none is stored" in answer["errmsg"]
    assert "FOREIGN KEY" in answer["errmsg"]
    assert not db.in_transaction
    assert [row[0] for row in db.execute("SELECT _id FROM things")] == ["0"]
    assert db.execute("SELECT count(*) FROM children").fetchone()[0] == 0
