"""The embedded store reads a database's collection names once a schema version, and what it
answers follows every change: this connection's, another's, one rolled back."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from neosqlite import Connection

from conversations._nx_catalog import remember_collection_names
from conversations._nx_child import build_handler
from tests.nx_server import driver_of


def _catalog_reads(db: sqlite3.Connection) -> list[str]:
    """The statements that read the database's tables, as SQLite runs them from now on."""
    reads: list[str] = []
    db.set_trace_callback(lambda sql: reads.append(sql) if "sqlite_master" in sql else None)
    return reads


@pytest.fixture
def connections(tmp_path: Path) -> Iterator[tuple[Connection, Connection]]:
    remember_collection_names()
    one, other = Connection(str(tmp_path / "c.db")), Connection(str(tmp_path / "c.db"))
    one["a"].insert_one({"n": 1})
    try:
        yield one, other
    finally:
        one.close()
        other.close()


def test_the_names_are_read_once_until_the_schema_changes(connections: tuple[Connection, Connection]) -> None:
    one, _ = connections
    assert one.list_collection_names() == ["a"]
    reads = _catalog_reads(one.db)
    assert one.list_collection_names() == ["a"]
    assert one.list_collection_names() == ["a"]
    assert reads == []
    one["b"].insert_one({"n": 1})  # creates the table
    reads.clear()
    assert sorted(one.list_collection_names()) == ["a", "b"]
    assert len(reads) == 1
    one.drop_collection("a")
    assert one.list_collection_names() == ["b"]


def test_another_connection_s_changes_are_seen(connections: tuple[Connection, Connection]) -> None:
    one, other = connections
    assert one.list_collection_names() == ["a"]
    other["c"].insert_one({"n": 1})
    assert sorted(one.list_collection_names()) == ["a", "c"]
    other.drop_collection("a")
    assert one.list_collection_names() == ["c"]


def test_names_read_in_a_transaction_that_rolls_back_are_not_kept(connections: tuple[Connection, Connection]) -> None:
    one, _ = connections
    db = one.db
    assert one.list_collection_names() == ["a"]
    db.execute("BEGIN")
    db.execute("CREATE TABLE x (id INTEGER PRIMARY KEY, _id TEXT, data TEXT)")
    assert sorted(one.list_collection_names()) == ["a", "x"]
    db.execute("ROLLBACK")
    # the next change takes the schema to the number the rolled-back one had, with other tables
    db.execute("CREATE TABLE z (id INTEGER PRIMARY KEY, _id TEXT, data TEXT)")
    assert sorted(one.list_collection_names()) == ["a", "z"]
    db.execute("BEGIN")
    db.execute("CREATE TABLE y (id INTEGER PRIMARY KEY, _id TEXT, data TEXT)")
    assert sorted(one.list_collection_names()) == ["a", "y", "z"]
    db.execute("ROLLBACK")
    assert sorted(one.list_collection_names()) == ["a", "z"]


def test_a_transaction_is_answered_from_the_committed_schema_s_names(
    connections: tuple[Connection, Connection],
) -> None:
    one, _ = connections
    assert one.list_collection_names() == ["a"]
    reads = _catalog_reads(one.db)
    one.db.execute("BEGIN IMMEDIATE")
    try:
        assert one.list_collection_names() == ["a"]
    finally:
        one.db.execute("ROLLBACK")
    assert reads == []


class _TransactionEndingUnderTheRead:
    """A connection on which the open transaction ends right after the names are read, as a
    client's ``abortTransaction`` may end it from another thread (under the admin database's lock)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)

    def execute(self, sql: str, *args: Any) -> Any:
        cursor = self._db.execute(sql, *args)
        if "sqlite_master" in sql and self._db.in_transaction:
            rows = cursor.fetchall()
            self._db.execute("ROLLBACK")
            return _Rows(rows)
        return cursor


class _Rows:
    def __init__(self, rows: list[Any]) -> None:
        self._rows = rows

    def fetchall(self) -> list[Any]:
        return self._rows


def test_names_read_by_a_transaction_that_ends_under_the_read_are_not_kept(
    connections: tuple[Connection, Connection],
) -> None:
    one, _ = connections
    real = one.db
    assert one.list_collection_names() == ["a"]
    real.execute("BEGIN")
    real.execute("CREATE TABLE x (id INTEGER PRIMARY KEY, _id TEXT, data TEXT)")
    one.db = _TransactionEndingUnderTheRead(real)
    try:
        assert sorted(one.list_collection_names()) == ["a", "x"]  # read before the rollback
        assert not real.in_transaction
        real.execute("CREATE TABLE z (id INTEGER PRIMARY KEY, _id TEXT, data TEXT)")  # x's cookie again
        assert sorted(one.list_collection_names()) == ["a", "z"]
    finally:
        one.db = real


def test_a_connection_to_another_file_is_not_answered_from_the_names_kept(
    connections: tuple[Connection, Connection], tmp_path: Path
) -> None:
    one, _ = connections
    real = one.db
    assert one.list_collection_names() == ["a"]
    cookie = real.execute("PRAGMA schema_version").fetchone()[0]
    elsewhere = sqlite3.connect(tmp_path / "elsewhere.db", isolation_level=None)
    elsewhere.execute("CREATE TABLE q (id INTEGER PRIMARY KEY, _id TEXT, data TEXT)")
    elsewhere.execute(f"PRAGMA schema_version = {int(cookie)}")  # the same cookie, other tables
    one.db = elsewhere
    try:
        assert one.list_collection_names() == ["q"]
    finally:
        one.db = real
        elsewhere.close()


def test_a_caller_changing_the_names_it_got_changes_nothing_kept(connections: tuple[Connection, Connection]) -> None:
    one, _ = connections
    names = one.list_collection_names()
    names.append("not-there")
    again = one.list_collection_names()
    again.append("nor-this")
    assert one.list_collection_names() == ["a"]


async def test_the_served_store_finds_a_collection_made_dropped_and_made_again(tmp_path: Path) -> None:
    handler = build_handler(str(tmp_path))
    async with driver_of(handler) as client:
        things = client["catalog"]["things"]
        assert await things.find({}).to_list() == []
        await things.insert_many([{"_id": 1}, {"_id": 2}])
        assert [d["_id"] for d in await things.find({}).to_list()] == [1, 2]
        await things.drop()
        assert await things.find({}).to_list() == []
        await things.insert_one({"_id": 3})
        assert [d["_id"] for d in await things.find({}).to_list()] == [3]
        assert await client["catalog"].list_collection_names() == ["things"]
