"""The repositories over one client: every index they declare exists, and a second start-up
creates none again."""

from __future__ import annotations

from typing import Any

from conversations.repositories import INDEXES, Repositories


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
