"""The event log that drives the live console across router processes: every process writes what
happened (a delivery, a thread changing hands, a message that needs a person) and follows the log,
through the store's change stream or by polling; events older than an hour are pruned.

The replies themselves are the rest of the log: an outbound message, stored anyway, is read back
as a ``message`` event of its thread (:func:`reply_event`), through a change stream on ``messages``
or an indexed time query, so a bot-answered message writes no event of its own.
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
from conversations.filters import exactly
from conversations.models import epoch_ms

# what marks a reply the live feed tells of (``feed`` on the message; a campaign's messages have none:
# its thousands of sends would refresh every console of the account)
FEED = {"feed": "live"}
INDEXES: IndexPlan = {
    "events": [IndexModel([("at_ms", ASCENDING)])],
    # the live feed's replies (every reply but a campaign's sends), by time
    "messages": [IndexModel([("created_at", ASCENDING)], name="live_feed_replies", partialFilterExpression=FEED)],
}
# what the feed reads of a reply: never its text
_REPLY_FIELDS = {"account_id": 1, "thread_id": 1, "created_at": 1, "inbox": 1}


def reply_event(doc: dict[str, Any]) -> dict[str, Any]:
    """An outbound message as the ``message`` event of its thread that consoles and the web chat
    relay follow (it names the reply, so a process that sent it itself reads nothing). ``inbox``:
    who may hear of it, stored with the reply. (A reply stored by an earlier release is not in the
    feed: that release wrote a ``message`` event for it.)"""
    return {
        "_id": str(doc["_id"]),
        "account_id": doc.get("account_id"),
        "kind": "message",
        "at_ms": int(doc.get("created_at") or 0),
        "thread_id": doc.get("thread_id"),
        "inbox": doc.get("inbox"),
        "replies": [str(doc["_id"])],
    }


class EventsRepository(Repository):
    """Writing, reading, following and pruning the event log."""

    async def emit_event(self, account_id: str, kind: str, now: datetime, **fields: Any) -> str:
        """Write one event (batched with concurrent ones); returns its id."""
        event = {"_id": f"evt_{ObjectId()}", "account_id": account_id, "kind": kind, "at_ms": epoch_ms(now), **fields}
        await self._client.write("events", InsertOne(event))
        return str(event["_id"])

    async def events_since(self, at_ms: int, limit: int = 500) -> list[dict[str, Any]]:
        return await self._db.events.find({"at_ms": {"$gte": at_ms}}).sort("at_ms", ASCENDING).limit(limit).to_list()

    async def replies_since(self, at_ms: int, limit: int = 500) -> list[dict[str, Any]]:
        """The outbound messages stored at ``at_ms`` or later, oldest first, as feed events."""
        cursor = self._db.messages.find({**exactly(**FEED), "created_at": {"$gte": at_ms}}, _REPLY_FIELDS)
        return [reply_event(doc) for doc in await cursor.sort("created_at", ASCENDING).limit(limit).to_list()]

    async def prune_events(self, before_ms: int) -> None:
        await self._db.events.delete_many({"at_ms": {"$lt": before_ms}})

    async def watch_events(self) -> AsyncIterator[dict[str, Any]]:
        """New events as the store's change stream reports them (inserts only, so the embedded
        server's missing ``updateDescription`` does not matter); ``ChangeStreamFailed`` when the
        stream cannot be followed (poll instead)."""
        async for doc in self._inserts("events", {}):
            yield doc

    async def watch_replies(self) -> AsyncIterator[dict[str, Any]]:
        """New outbound messages as feed events, from the change stream of ``messages``."""
        async for doc in self._inserts("messages", {f"fullDocument.{k}": v for k, v in FEED.items()}):
            yield reply_event(doc)

    async def _inserts(self, collection: str, match: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        try:
            pipeline = [{"$match": {"operationType": "insert", **match}}]
            async with await self._db[collection].watch(pipeline) as stream:
                async for change in stream:
                    doc = change.get("fullDocument")
                    if doc:
                        yield doc
        except PyMongoError as exc:
            raise ChangeStreamFailed(type(exc).__name__) from exc
