"""The inbound path's lookup of contacts' open threads by their key (``open_key``), batched
across concurrent messages by ``ThreadsRepository.find_open_thread``.

A router remembers the id of each open thread it found (``KEPT`` keys at most, the newest found
kept) and reads those by ``_id`` in one query, taking one only while it is still open under its
key: another process may have resolved it, a merge moved it. Keys never found are read by their
key at the same time, one ``$eq`` query each on the embedded store (``Repository._find_each``:
it answers an ``$in`` on ``open_key`` by reading every thread), one ``$in`` on MongoDB; a key
whose remembered thread is no longer open under it is read by its key after.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from conversations.client import Repository, StoreClient

# how many open threads' ids a process remembers by their key (the customers writing lately)
KEPT = 20_000


class OpenThreads(Repository):
    def __init__(self, client: StoreClient) -> None:
        super().__init__(client)
        self._ids: dict[str, str] = {}  # open key -> the thread last found open under it

    async def find(self, keys: Sequence[str]) -> list[dict[str, Any] | None]:
        """The open thread under each key (``None``: none), as the module's docstring says."""
        wanted = list(dict.fromkeys(keys))
        known = [thread_id for key in wanted if (thread_id := self._ids.get(key))]
        new = [key for key in wanted if key not in self._ids]
        by_id, by_new_key = await asyncio.gather(
            self._db.threads.find({"_id": {"$in": known}}).to_list() if known else _no_documents(),
            self._find_each("threads", "open_key", new),
        )
        by_key = {doc["open_key"]: doc for doc in [*by_id, *by_new_key] if doc.get("open_key") in wanted}
        # a thread found before that is no longer open under its key: the key's open one, if any
        stale = [key for key in wanted if key in self._ids and key not in by_key]
        for doc in await self._find_each("threads", "open_key", stale):
            by_key[doc["open_key"]] = doc
        for key in wanted:
            self._ids.pop(key, None)  # kept as the newest, or forgotten if none is open
            if key in by_key:
                self._ids[key] = str(by_key[key]["_id"])
        while len(self._ids) > KEPT:
            del self._ids[next(iter(self._ids))]
        return [by_key.get(key) for key in keys]


async def _no_documents() -> list[dict[str, Any]]:
    return []
