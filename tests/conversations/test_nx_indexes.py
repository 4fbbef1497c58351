"""A partial index is partial on the embedded store too: it holds the documents that have its
filter's fields and no others, the queries give the same answers, and a store an earlier release
made with whole indexes gets them partial at its next start-up (``conversations/_nx_indexes.py``)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from pymongo.errors import DuplicateKeyError

from conversations._nx_indexes import where_fields
from tests.conftest import raw_database_of
from tests.query_plans import captured_store

_OUTBOX = "idx_messages_send_state_send_due_ms"
_CAMPAIGN = "idx_messages_meta_campaign"
_EXTERNAL = "idx_messages_account_id_channel_external_id"
_THREAD = "idx_messages_thread_id_created_at"  # a whole index, on MongoDB too


def _message(n: int) -> dict[str, Any]:
    return {"_id": f"msg_{n}", "account_id": "default", "channel": "telegram", "thread_id": "thr_1", "created_at": n}


CUSTOMERS = [{**_message(n), "direction": "in", "external_id": f"tg-{n}"} for n in range(4)]
REPLIES = [{**_message(10 + n), "direction": "out", "send": {"state": "pending", "due_ms": n}} for n in range(2)]
CAMPAIGN = [{**_message(20), "direction": "out", "meta": {"campaign": "cmp_1"}, "send": {"state": "sent"}}]


def _entries(data_dir: Path) -> dict[str, int]:
    """How many entries each index of the stopped store's ``messages`` holds (SQLite's ANALYZE)."""
    db = sqlite3.connect(data_dir / "plans.db")
    try:
        db.execute("ANALYZE")
        return {name: int(stat.split()[0]) for name, stat in db.execute("SELECT idx, stat FROM sqlite_stat1")}
    finally:
        db.close()


async def _with_store(data_dir: Path, work: Any) -> None:
    """``work`` on the database of a store with its indexes in ``data_dir``, stopped after it."""
    async with captured_store(data_dir) as (store, _):
        await work(raw_database_of(store))


async def _answers(db: Any) -> tuple[list[str], list[str], list[str]]:
    pending = await db.messages.find({"send.state": {"$eq": "pending"}, "send.due_ms": {"$lte": 5}}).to_list()
    campaign = await db.messages.find({"meta.campaign": "cmp_1"}).to_list()
    sends = await db.messages.find({"account_id": {"$eq": "default"}, "send.state": {"$exists": True}}).to_list()
    return [d["_id"] for d in pending], [d["_id"] for d in campaign], sorted(d["_id"] for d in sends)


async def test_a_partial_index_holds_only_the_documents_with_its_fields(tmp_path: Path) -> None:
    """The outbox's index holds the outbox items, the campaigns' the campaign's message, the
    external ids' the customers' messages; a whole index holds every message; the queries that
    read through them find what they should."""

    async def store_and_ask(db: Any) -> None:
        await db.messages.insert_many([*CUSTOMERS, *REPLIES, *CAMPAIGN])
        assert await _answers(db) == (["msg_10", "msg_11"], ["msg_20"], ["msg_10", "msg_11", "msg_20"])

    await _with_store(tmp_path, store_and_ask)
    entries = _entries(tmp_path)
    assert (entries[_OUTBOX], entries[_CAMPAIGN], entries[_EXTERNAL], entries[_THREAD]) == (3, 1, 4, 7)


async def test_an_earlier_release_s_whole_indexes_become_partial_at_start_up(tmp_path: Path) -> None:
    """A store whose partial indexes are whole (as every release before this one made them) keeps
    its documents, gets the indexes partial when the router next creates its indexes, answers the
    same, and its unique partial index still refuses a second message with the same external id
    while taking any number without one."""

    async def store(db: Any) -> None:
        await db.messages.insert_many([*CUSTOMERS, *REPLIES, *CAMPAIGN])

    await _with_store(tmp_path, store)
    db = sqlite3.connect(tmp_path / "plans.db")
    with db:
        partial = "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql LIKE '% WHERE %'"
        for name, sql in db.execute(partial).fetchall():
            db.execute(f'DROP INDEX "{name}"')
            db.execute(sql[: sql.index(" WHERE ")])
    db.close()
    assert _entries(tmp_path)[_OUTBOX] == 7  # whole, as the earlier release left it

    async def upgraded(db: Any) -> None:
        assert await db.messages.count_documents({}) == 7
        assert await _answers(db) == (["msg_10", "msg_11"], ["msg_20"], ["msg_10", "msg_11", "msg_20"])
        with pytest.raises(DuplicateKeyError):
            await db.messages.insert_one({**_message(30), "external_id": "tg-1"})
        await db.messages.insert_many([_message(31), _message(32)])  # no external id: no conflict

    await _with_store(tmp_path, upgraded)
    entries = _entries(tmp_path)
    assert (entries[_OUTBOX], entries[_CAMPAIGN], entries[_EXTERNAL], entries[_THREAD]) == (3, 1, 4, 9)


@pytest.mark.parametrize(
    ("expression", "fields"),
    [
        ({"send.state": "pending"}, ["send.state"]),
        ({"external_id": {"$exists": True}}, ["external_id"]),
        ({"route": {"$type": "string"}}, ["route"]),
        ({"b": {"$gt": 1}, "a": 1}, ["a", "b"]),
        # what "the field is there" cannot stand for: the index stays whole
        ({"gone": {"$exists": False}}, []),
        ({"a": None}, []),
        ({"a": {"$eq": None}}, []),
        ({"a": {"$type": "null"}}, []),
        ({"$or": [{"a": 1}, {"b": 1}]}, []),
        ({"a": {"$in": [1, 2]}}, []),
        ({"it's": 1}, []),
        ({}, []),
        (None, []),
    ],
)
def test_which_partial_filters_become_a_clause(expression: Any, fields: list[str]) -> None:
    assert where_fields(expression) == fields
