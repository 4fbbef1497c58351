"""The repositories over one client: every index they declare exists, and a second start-up
creates none again."""

from __future__ import annotations

import asyncio
from typing import Any

from conversations.embedded import EmbeddedMongo
from conversations.models import utcnow
from conversations.repositories import INDEXES, Repositories
from conversations.traffic import Identity


async def test_indexes_are_created_idempotently(store: Repositories, raw_database: Any) -> None:
    await store.ensure_indexes()  # the fixture ran it once already
    every: dict[str, list[Any]] = {}
    for indexes in INDEXES:
        for name, models in indexes.items():
            every.setdefault(name, []).extend(models)
    for collection, models in every.items():
        info = await raw_database[collection].index_information()
        # field names and uniqueness (the embedded server reports every direction as 1)
        found = {(tuple(k for k, _ in spec["key"]), bool(spec.get("unique"))) for spec in info.values()}
        # the embedded server lists no text index (SQLite FTS5 tables): search's tests show it there
        listed = [model for model in models if "text" not in model.document["key"].values()]
        for model in listed:
            wanted = (tuple(model.document["key"]), bool(model.document.get("unique")))
            assert wanted in found, (collection, model.document)
        assert len(info) == len(listed) + 1  # plus _id: a second run added nothing


async def test_counts_and_lookups_by_several_values_answer_the_same_as_mongodb_asks_them(
    store: Repositories, embedded: EmbeddedMongo, db_name: str
) -> None:
    """Counts and lookups by several values are asked one way of MongoDB (``count_documents``,
    one ``$in``) and another of the embedded store (ids read through an index, one ``$eq`` query a
    value): the same answers either way, the embedded store answering both forms."""
    now = utcnow()
    threads = [await store.threads.open_thread("acme", f"con_{n}", Identity("sms", f"+{n}"), now) for n in range(3)]
    await store.queue.queue_thread(threads[0].id, "asked", "m", now)
    for n in range(2):
        await store.outbox.create_outbound(
            dedup_key=f"k{n}", thread=threads[n], to=Identity("sms", f"+{n}"), text="x", sender={}, now=now
        )

    async def answers(of: Repositories) -> tuple[Any, ...]:
        found = await asyncio.gather(*(of.threads.find_open_thread(f"con_{n}", "sms") for n in range(4)))
        return (
            [thread.id if thread else None for thread in found],
            await of.outbox.outbox_pending(),
            await of.queue.queue_depth(),
            await of.queue.queue_depth("acme"),
            await of.queue.count_assigned("agt_nobody"),
        )

    assert await answers(store) == ([*(thread.id for thread in threads), None], 2, 1, 1, 0)
    as_mongodb = Repositories.connect(embedded.uri, db_name)
    as_mongodb.client._embedded = False  # the form of each query MongoDB is asked
    try:
        assert await answers(as_mongodb) == await answers(store)
    finally:
        await as_mongodb.close()
