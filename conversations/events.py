"""The event log that drives the live console across router processes: every process writes what
happened (a message, a delivery, a thread changing hands) and follows the log, through the store's
change stream or by polling; events older than an hour are pruned.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from bson import ObjectId
from pymongo import ASCENDING, IndexModel, InsertOne
from pymongo.errors import PyMongoError

from conversations.client import IndexPlan, Repository
from conversations.errors import ChangeStreamFailed
from conversations.models import epoch_ms

INDEXES: IndexPlan = {"events": [IndexModel([("at_ms", ASCENDING)])]}


class EventsRepository(Repository):
    """Writing, reading, following and pruning the event log."""

    async def emit_event(self, account_id: str, kind: str, now: datetime, **fields: Any) -> str:
        """Write one event (batched with concurrent ones); returns its id."""
        event = {"_id": f"evt_{ObjectId()}", "account_id": account_id, "kind": kind, "at_ms": epoch_ms(now), **fields}
        await self._client.write("events", InsertOne(event))
        return str(event["_id"])

    async def events_since(self, at_ms: int, limit: int = 500) -> list[dict[str, Any]]:
        return await self._db.events.find({"at_ms": {"$gte": at_ms}}).sort("at_ms", ASCENDING).limit(limit).to_list()

    async def prune_events(self, before_ms: int) -> None:
        await self._db.events.delete_many({"at_ms": {"$lt": before_ms}})

    async def watch_events(self) -> AsyncIterator[dict[str, Any]]:
        """New events as the store's change stream reports them (inserts only, so the embedded
        server's missing ``updateDescription`` does not matter); ``ChangeStreamFailed`` when the
        stream cannot be followed (poll instead)."""
        try:
            async with await self._db.events.watch([{"$match": {"operationType": "insert"}}]) as stream:
                async for change in stream:
                    doc = change.get("fullDocument")
                    if doc:
                        yield doc
        except PyMongoError as exc:
            raise ChangeStreamFailed(type(exc).__name__) from exc
