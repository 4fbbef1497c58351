"""What each kind of document operation on the message path costs the embedded store.

    PYTHONPATH=. .venv/bin/python bench/store_ops.py [--documents 3000] [--batch 100]

Starts an embedded store (its own process) with omnirouter's indexes and, in batches as the router
sends them, inserts message documents, stores replies as the router does (an upsert with
``$setOnInsert``, in the decisions' command), updates the messages as a dispatch decision does, and
reads them back by ``_id``; the same on a collection without indexes. Prints wall time and the store process's CPU
time per document: the per-document price behind ``bench/load.py``'s store CPU per message (a
bot-answered message is 2 inserts, 2 updates and 2 reads); then, one command at a time, what a
command costs the store before any document (a ``ping``), and a read and an update of one message
by its ``_id`` (the commands the store runs on its event loop: ``conversations/_nx_inline.py``).
The same on a collection with only the indexes of ``messages`` that are not partial: what the
partial ones still cost a document they do not cover (the sample is a customer's message, in none
of them; on the embedded store SQLite checks each partial index's clause for every document:
``conversations/_nx_indexes.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from pymongo import AsyncMongoClient, UpdateOne

from bench.meters import cpu_seconds
from conversations.embedded import EmbeddedMongo
from conversations.repositories import INDEXES, Repositories

SAMPLE: dict[str, Any] = {
    "account_id": "default",
    "thread_id": "thr_1",
    "contact_id": "con_1",
    "direction": "in",
    "channel": "telegram",
    "text": "where is my order A-10423?",
    "created_at": 1795640928544,
    "sender": {"kind": "customer", "name": "Ann"},
    "attachments": [],
    "dispatch_state": "pending",
    "dispatch_due_ms": 1795640958544,
    "meta": {},
}
DECISION = {
    "$set": {"dispatch_state": "done", "decision": {"action": "answered", "reason": "greet"}},
    "$unset": {"dispatch_due_ms": ""},
}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", "--documents", type=int, default=3000)
    parser.add_argument("--batch", type=int, default=100)
    args = parser.parse_args()
    if args.documents < 1 or not 1 <= args.batch <= args.documents:
        raise SystemExit("bench: need --documents >= 1 and 1 <= --batch <= --documents")
    with tempfile.TemporaryDirectory(prefix="omnirouter-ops-") as tmp:
        server = EmbeddedMongo(Path(tmp))
        await server.start()
        try:
            store = Repositories.connect(server.uri, "ops")
            await store.ensure_indexes()
            await store.close()
            pid = int((Path(tmp) / "nx-27017.pid").read_text())
            client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(server.uri)
            db = client["ops"]
            ids = [f"msg_{uuid.uuid4().hex}" for _ in range(args.documents)]
            batches = [ids[i : i + args.batch] for i in range(0, len(ids), args.batch)]

            async def measure(name: str, run: Callable[[list[str]], Awaitable[Any]]) -> None:
                cpu, started = cpu_seconds(pid), time.perf_counter()
                for batch in batches:
                    await run(batch)
                wall, used = time.perf_counter() - started, cpu_seconds(pid) - cpu
                print(
                    f"{name:<44} {wall / len(ids) * 1e3:6.3f} ms wall, {used / len(ids) * 1e3:6.3f} ms store CPU per document"
                )

            print(f"{len(ids)} documents in batches of {args.batch}")
            await measure(
                "insert a message (messages, with indexes)",
                lambda batch: db.messages.insert_many(
                    [{**SAMPLE, "_id": i, "external_id": i} for i in batch], ordered=False
                ),
            )
            replies = {i: f"rep_{i}" for i in ids}
            await measure(
                "store a reply by an upsert ($setOnInsert)",
                lambda batch: db.messages.bulk_write(
                    [
                        UpdateOne({"_id": replies[i]}, {"$setOnInsert": {**SAMPLE, "direction": "out"}}, upsert=True)
                        for i in batch
                    ],
                    ordered=False,
                ),
            )
            await measure(
                "update it with a decision",
                lambda batch: db.messages.bulk_write([UpdateOne({"_id": i}, DECISION) for i in batch], ordered=False),
            )
            await measure("read it by _id ($in)", lambda batch: db.messages.find({"_id": {"$in": batch}}).to_list())
            whole = [
                m for plan in INDEXES for m in plan.get("messages", []) if "partialFilterExpression" not in m.document
            ]
            await db.whole.create_indexes(whole)
            await measure(
                f"insert (only the {len(whole)} indexes not partial)",
                lambda batch: db.whole.insert_many(
                    [{**SAMPLE, "_id": i, "external_id": i} for i in batch], ordered=False
                ),
            )
            await measure(
                "update it (only those indexes)",
                lambda batch: db.whole.bulk_write([UpdateOne({"_id": i}, DECISION) for i in batch], ordered=False),
            )
            await measure(
                "insert (a collection without indexes)",
                lambda batch: db.plain.insert_many([{**SAMPLE, "_id": i} for i in batch], ordered=False),
            )
            await measure(
                "update it (without indexes)",
                lambda batch: db.plain.bulk_write([UpdateOne({"_id": i}, DECISION) for i in batch], ordered=False),
            )

            async def one_at_a_time(name: str, call: Callable[[int], Awaitable[Any]], commands: int = 1000) -> None:
                cpu, started = cpu_seconds(pid), time.perf_counter()
                for n in range(commands):
                    await call(n)
                wall, used = time.perf_counter() - started, cpu_seconds(pid) - cpu
                print(
                    f"{name:<44} {wall / commands * 1e3:6.3f} ms wall, {used / commands * 1e3:6.3f} ms store CPU per command"
                )

            print("one command at a time: what a command costs the store beside its documents")
            await one_at_a_time("a round trip that does nothing (ping)", lambda n: client.admin.command("ping"))
            await one_at_a_time("read one message by _id", lambda n: db.messages.find_one({"_id": ids[n % len(ids)]}))
            await one_at_a_time(
                "update one message by _id",
                lambda n: db.messages.update_one({"_id": ids[n % len(ids)]}, {"$set": {"dispatch_due_ms": n}}),
            )
            await client.close()
        finally:
            await server.stop()


if __name__ == "__main__":
    asyncio.run(main())
