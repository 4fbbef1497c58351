"""Which of the embedded store's commands run on its event loop, on the real server and driver."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from nx_27017.handler import NeoSQLiteHandler
from pymongo import AsyncMongoClient, DeleteOne, UpdateOne

from conversations._nx_child import build_handler
from conversations._nx_inline import MOST_DOCUMENTS, bounded_by_shape
from tests.nx_server import driver_of


class Recording(NeoSQLiteHandler):  # type: ignore[misc]
    """The store's handler, noting for each command the thread that ran it."""

    def __init__(self, data_dir: str) -> None:
        super().__init__(data_dir, data_dir=data_dir)
        self.ran: list[tuple[str, bool]] = []  # (command, on the loop's thread)
        self.loop_thread = threading.get_ident()

    def _note(self, msg: dict[str, Any]) -> None:
        body: dict[str, Any] = next((d for kind, d in msg["sections"] if kind == "body"), {})
        self.ran.append((next(iter(body)), threading.get_ident() == self.loop_thread))

    def handle_insert(self, msg: dict[str, Any]) -> Any:
        self._note(msg)
        return super().handle_insert(msg)

    def handle_command(self, msg: dict[str, Any]) -> Any:
        self._note(msg)
        return super().handle_command(msg)


@dataclass
class Served:
    handler: Recording
    client: AsyncMongoClient[dict[str, Any]]

    def since(self, mark: int) -> list[tuple[str, bool]]:
        return [c for c in self.handler.ran[mark:] if c[0] not in ("hello", "ismaster", "isMaster", "endSessions")]


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    build_handler(str(tmp_path)).close_all()  # the store's set-up: short commands on the loop among it
    handler = Recording(str(tmp_path))
    async with driver_of(handler) as client:
        yield Served(handler, client)


async def test_the_message_paths_commands_by_id_run_on_the_loop(served: Served) -> None:
    db = served.client.inline
    await db.messages.insert_one({"_id": "a", "n": 1})  # the collection exists before we count
    mark = len(served.handler.ran)
    await db.messages.insert_many([{"_id": f"b{n}", "n": n} for n in range(10)])
    await db.messages.update_one({"_id": "a"}, {"$set": {"n": 2}})
    await db.messages.bulk_write([UpdateOne({"_id": f"b{n}"}, {"$inc": {"n": 1}}) for n in range(5)], ordered=False)
    assert await db.messages.find({"_id": {"$in": ["a", "b1"]}}).to_list() != []
    await db.messages.find_one_and_update({"_id": "a"}, {"$set": {"n": 3}})
    await db.messages.delete_one({"_id": "b9"})
    assert served.since(mark) == [
        ("insert", True),
        ("update", True),
        ("update", True),
        ("find", True),
        ("findAndModify", True),
        ("delete", True),
    ]
    assert (await db.messages.find_one({"_id": "a"}) or {})["n"] == 3
    assert await db.messages.count_documents({}) == 10


async def test_queries_and_writes_not_bounded_by_their_shape_go_to_a_thread(served: Served) -> None:
    db = served.client.inline
    await db.messages.insert_one({"_id": -1, "n": -1})  # the collection exists before we count
    mark = len(served.handler.ran)
    await db.messages.insert_many([{"_id": n, "n": n} for n in range(MOST_DOCUMENTS + 1)])  # more than MOST_DOCUMENTS
    assert len(await db.messages.find({"n": {"$gte": 0}}).to_list()) == MOST_DOCUMENTS + 1  # and a getMore
    await db.messages.update_many({"n": {"$lt": 5}}, {"$set": {"small": True}})
    await db.messages.find({"_id": {"$gt": 10}}).to_list()
    await db.messages.bulk_write([DeleteOne({"n": 3})])
    await (await db.messages.aggregate([{"$match": {"_id": 1}}])).to_list()
    ran = served.since(mark)
    assert ran and not any(on_loop for _, on_loop in ran), ran
    assert await db.messages.count_documents({"small": True}) == 5  # n = -1, 0, 1, 2, 4: 3 was deleted


async def test_a_short_command_waits_in_a_thread_while_a_long_one_holds_its_database(served: Served) -> None:
    db = served.client.inline
    await db.messages.insert_one({"_id": "a", "n": 1})
    lock = served.handler._lock_for("inline")
    release = threading.Event()
    taken = threading.Event()

    def long_command() -> None:  # as a report would: the database's lock for a while
        with lock:
            taken.set()
            release.wait(5)

    holder = threading.Thread(target=long_command)
    holder.start()
    assert await asyncio.to_thread(taken.wait, 5)
    mark = len(served.handler.ran)
    update = asyncio.create_task(db.messages.update_one({"_id": "a"}, {"$set": {"n": 2}}))
    # meanwhile the store's loop answers a command on another database: it is not waiting
    assert await asyncio.wait_for(served.client.other.things.find_one({"_id": "b"}), 5) is None
    assert not update.done()
    release.set()
    await asyncio.wait_for(update, 10)
    await asyncio.to_thread(holder.join, 5)
    assert ("update", False) in served.since(mark) and ("update", True) not in served.since(mark)
    assert (await db.messages.find_one({"_id": "a"}) or {})["n"] == 2


def body(command: dict[str, Any], **sequences: list[Any]) -> dict[str, Any]:
    sections: list[tuple[str, Any]] = [("body", {**command, "$db": "d"})]
    sections += [("payload", {name: docs}) for name, docs in sequences.items()]
    return {"request_id": 1, "sections": sections}


@pytest.mark.parametrize(
    ("msg", "expected"),
    [
        (body({"insert": "messages"}, documents=[{"_id": 1}] * MOST_DOCUMENTS), True),
        (body({"insert": "messages"}, documents=[{"_id": 1}] * (MOST_DOCUMENTS + 1)), False),
        (body({"insert": "messages", "documents": [{"_id": 1}]}), True),
        (body({"update": "messages"}, updates=[{"q": {"_id": 1, "v": 2}, "u": {}}]), True),
        (body({"update": "messages"}, updates=[{"q": {"_id": 1}, "u": {}}, {"q": {"open_key": 1}, "u": {}}]), False),
        (body({"update": "messages"}, updates=[]), False),
        (body({"update": "messages"}, deletes=[{"q": {"_id": 1}}]), False),
        (body({"delete": "messages", "deletes": [{"q": {"_id": {"$in": [1, 2]}}, "limit": 0}]}), True),
        (body({"find": "messages", "filter": {"_id": {"$in": list(range(MOST_DOCUMENTS + 1))}}}), False),
        (body({"find": "messages", "filter": {"_id": {"$gt": 1}}}), False),
        (body({"find": "messages", "filter": {"_id": {"$eq": 1}}}), True),
        (body({"find": "messages", "filter": {"_id": {"kind": "composite"}}}), False),
        (body({"find": "messages", "filter": {"_id": 1, "erased_at": {"$exists": False}, "v": {"$lt": 3}}}), True),
        (body({"find": "messages", "filter": {"_id": 1, "n": {"$type": "int"}}}), False),
        (body({"find": "messages", "filter": {"_id": 1, "s": {"$regex": "A", "$options": "i"}}}), False),
        (body({"find": "messages", "filter": {"_id": {"$in": [1, 2]}, "tags": {"$in": [[1]]}}}), False),
        (body({"find": "messages", "filter": {"_id": 1}, "createIndexes": "messages"}), False),
        (body({"find": "messages", "filter": {"_id": 1}, "tailable": True, "awaitData": True}), False),
        (body({"find": "fs.chunks", "filter": {"_id": 1}}), False),
        (body({"delete": "fs.files", "deletes": [{"q": {"_id": 1}, "limit": 1}]}), False),
        (body({"insert": "messages"}, documents=[{"_id": 1, "data": b"x" * 10}]), False),
        (
            body({"update": "messages", "updates": [{"q": {"_id": 1}}], "delete": "messages", "deletes": [{"q": {}}]}),
            False,
        ),
        (body({"update": "messages"}, updates=[{"q": {"_id": {"$in": list(range(40))}}}] * 2), False),
        (body({"update": "messages"}, updates=[{"q": {"_id": {"$in": list(range(30))}}}] * 2), True),
        (body({"update": "messages"}, updates=[{"q": {"_id": 1}}] * 100_000), False),
        (body({"find": "messages", "filter": {"_id": {"$in": []}}}), False),
        (body({"find": "messages", "filter": {"_id": 1, "n": {"$eq": [1]}}}), False),
        (body({"find": "messages", "filter": {"_id": "2024-05-01 the first"}}), False),
        (body({"find": "messages", "filter": {"_id": 1, "day": {"$in": ["2024-01-01"]}}}), False),
        (body({"find": "messages", "filter": {"_id": 1, "n": {"$exists": 1}}}), False),
        (body({"find": "messages", "filter": {"_id": {"$in": [1, 2]}, "thread_id": "thr_1"}}), False),
        (body({"find": "messages", "filter": {"_id": {"$in": ["msg_1", "msg_2"]}}}), True),
        (body({"find": "email_sources", "filter": {"_id": "msg_1"}}), False),
        (body({"find": {"not": "a name"}, "filter": {"_id": "msg_1"}}), False),
        (body({"update": "messages", "writeConcern": {"w": 1, "j": True}}, updates=[{"q": {"_id": 1}}]), False),
        (body({"find": "messages", "filter": {"_id": 1, "$where": "sleep(1000)"}}), False),
        (body({"find": "messages", "filter": {}}), False),
        (body({"findAndModify": "messages", "query": {"_id": "x"}}), True),
        (body({"findAndModify": "messages", "query": {"status": "queued"}}), False),
        (body({"aggregate": "messages", "pipeline": [{"$match": {"_id": 1}}]}), False),
        (body({"getMore": 1, "collection": "messages"}), False),
        ({"request_id": 1, "sections": [("body", {"insert": "messages"}), ("payload_docs", [{"_id": 1}])]}, False),
    ],
)
def test_which_shapes_bound_their_work(msg: dict[str, Any], expected: bool) -> None:
    assert bounded_by_shape(msg) is expected
