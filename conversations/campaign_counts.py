"""What a campaign's report counts, and the messaging tier's count of whom the campaigns wrote to.

Kept apart from ``campaigns.py`` (whose repository extends this one): the counts read the
campaign's recipients, its messages (through the indexes below, on the campaign's field and on
an account's campaign messages by channel and time) and its threads; on the embedded store none
of them reads every message of the store (its aggregates and ``distinct`` do, for some shapes).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo import ASCENDING, IndexModel

from conversations.client import IndexPlan, Repository
from conversations.filters import exactly
from conversations.models import epoch_ms, load_time
from conversations.outbox import INTERRUPTED

INDEXES: IndexPlan = {
    # a campaign's report: its messages and sends; an account's campaign messages of the last day on a channel
    "messages": [
        IndexModel([("meta.campaign", ASCENDING)], partialFilterExpression={"meta.campaign": {"$exists": True}}),
        IndexModel(
            [("account_id", ASCENDING), ("channel", ASCENDING), ("created_at", ASCENDING)],
            partialFilterExpression={"meta.campaign": {"$exists": True}},
        ),
    ]
}


# a campaign's threads asked about at once: one $in on MongoDB, so many finds on the embedded store
_THREADS_A_QUERY = 1000


class CampaignCounts(Repository):
    """A campaign's recipients, deliveries, failures and replies, and the tier's count."""

    async def recipient_counts(self, campaign_id: str) -> dict[str, int]:
        """Recipients by state and skip reason: ``queued``, ``skipped``, ``skipped:<reason>``
        (only skipped recipients carry a reason)."""
        counts: dict[str, int] = {}
        by_state: list[dict[str, Any]] = [
            {"$match": {"campaign_id": campaign_id}},
            {"$group": {"_id": "$state", "n": {"$sum": 1}}},
        ]
        async for row in await self._db.campaign_recipients.aggregate(by_state):
            counts[str(row["_id"])] = row["n"]
        by_reason = [
            {"$match": {"campaign_id": campaign_id, "reason": {"$exists": True}}},
            {"$group": {"_id": "$reason", "n": {"$sum": 1}}},
        ]
        async for row in await self._db.campaign_recipients.aggregate(by_reason):
            counts[f"skipped:{row['_id']}"] = row["n"]
        return counts

    async def delivery_counts(self, campaign_id: str) -> dict[str, int]:
        """The campaign's messages by delivery status (``queued``, ``sent``, ``delivered``,
        ``read``, ``failed``), as the providers last reported them."""
        pipeline: list[dict[str, Any]] = [
            {"$match": {"meta.campaign": campaign_id, "direction": "out"}},
            {"$group": {"_id": "$delivery_status", "n": {"$sum": 1}}},
        ]
        return {str(row["_id"]): row["n"] async for row in await self._db.messages.aggregate(pipeline)}

    async def failure_reasons(self, campaign_id: str, limit: int = 20) -> list[tuple[str, int]]:
        """Why the campaign's sends that were given up on failed: the provider's errors, most
        frequent first (the sends a restart interrupted are counted apart: ``interrupted_count``)."""
        pipeline: list[dict[str, Any]] = [
            {"$match": {"meta.campaign": campaign_id, "send.state": "dead", "send.last_error": {"$ne": INTERRUPTED}}},
            {"$group": {"_id": "$send.last_error", "n": {"$sum": 1}}},
            {"$sort": {"n": -1}},
            {"$limit": limit},
        ]
        return [(str(row["_id"] or ""), row["n"]) async for row in await self._db.messages.aggregate(pipeline)]

    async def interrupted_count(self, campaign_id: str) -> int:
        """How many of the campaign's sends a crash interrupted (the process died between leasing
        the message and recording what the provider answered): they may or may not have reached
        the customer, and are not sent again."""
        query = {**exactly(**{"meta.campaign": campaign_id}), "send.state": "dead", "send.last_error": INTERRUPTED}
        return await self._count("messages", query)

    async def replied_count(self, account_id: str, campaign_id: str, send_at: datetime) -> int:
        """How many of the campaign's conversations had a customer message (a call, a rating) after
        the campaign's send time: an answer, as far as the store can tell. The campaign's threads
        are found through the campaign's index, then each thread's customer messages since the
        send through the (thread, time) index: the cost grows with the campaign, not with what
        the account's customers wrote elsewhere since."""
        threads = await self._threads_of(exactly(**{"meta.campaign": campaign_id}))
        # the account and the direction are left bare: on the embedded store an $eq on them would
        # let SQLite read the account's customer messages through their index instead of the thread's
        since = {"account_id": account_id, "direction": "in", "created_at": {"$gte": epoch_ms(send_at)}}
        replied: set[Any] = set()
        ordered = sorted((t for t in threads if t is not None), key=str)
        for first in range(0, len(ordered), _THREADS_A_QUERY):
            chunk = ordered[first : first + _THREADS_A_QUERY]
            replied.update(
                d.get("thread_id")
                for d in await self._find_each("messages", "thread_id", chunk, since, {"thread_id": 1})
            )
        return len(replied)

    async def _threads_of(self, query: dict[str, Any]) -> set[Any]:
        """The threads of ``query``'s messages: ``distinct`` on MongoDB; on the embedded store,
        whose ``distinct`` reads every message in Python, their ids through the query's index."""
        if await self._client.is_embedded_server():
            return {doc.get("thread_id") for doc in await self._db.messages.find(query, {"thread_id": 1}).to_list()}
        return set(await self._db.messages.distinct("thread_id", query))

    async def written_first(self, account_id: str, channel: str, since: datetime) -> tuple[int, datetime | None]:
        """How many distinct contacts the account's campaigns wrote to on ``channel`` since ``since``,
        and the earliest of their last messages (the first to leave a window that starts later)."""
        match = {
            **exactly(account_id=account_id, channel=channel),
            "created_at": {"$gte": epoch_ms(since)},
            "meta.campaign": {"$exists": True},
        }
        if await self._client.is_embedded_server():
            # its aggregate groups in Python over every message of the store: the messages are
            # read through the campaigns' index and grouped here
            last: dict[Any, int] = {}
            for doc in await self._db.messages.find(match, {"contact_id": 1, "created_at": 1}).to_list():
                who = doc.get("contact_id")
                last[who] = max(last.get(who, doc["created_at"]), doc["created_at"])
            return len(last), load_time(min(last.values())) if last else None
        pipeline: list[dict[str, Any]] = [
            {"$match": match},
            {"$group": {"_id": "$contact_id", "last": {"$max": "$created_at"}}},
            {"$group": {"_id": None, "contacts": {"$sum": 1}, "leaves_first": {"$min": "$last"}}},
        ]
        async for row in await self._db.messages.aggregate(pipeline):
            return int(row["contacts"]), load_time(row["leaves_first"])
        return 0, None
