"""Customer satisfaction: the question asked when a conversation is resolved, and its answer.

One record per question (``satisfaction``): which thread, contact, channel and agent it was about,
when it was asked, and the customer's rating (1-5), comment and when they answered. A question
that could not be asked (WhatsApp's window had closed) is recorded too, ``skipped`` saying why, so
the reports can count it. A rating is taken once: the update is conditional on there being none
yet, whether it arrives as a message or through an e-mail link.

The records name the contact and carry what they wrote: a personal-data holder, erased with them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING, IndexModel

from conversations.client import IndexPlan, Repository
from conversations.filters import exactly
from conversations.models import epoch_ms, from_epoch_ms
from conversations.personal_data import ContactScope, query_holder, register_holder

INDEXES: IndexPlan = {
    "satisfaction": [
        IndexModel([("account_id", ASCENDING), ("contact_id", ASCENDING), ("asked_at", DESCENDING)]),
        IndexModel([("account_id", ASCENDING), ("asked_at", ASCENDING)]),
        IndexModel([("account_id", ASCENDING), ("thread_id", ASCENDING)]),
    ]
}


@dataclass(frozen=True)
class SatisfactionAsk:
    """One question about one resolved conversation, and its answer once given."""

    id: str
    account_id: str
    thread_id: str
    contact_id: str
    channel: str
    asked_at: datetime
    language: str = "en"
    agent_id: str | None = None
    team: str | None = None
    skipped: str | None = None  # why the question was not sent (``window_closed``)
    rating: int | None = None
    comment: str | None = None
    rated_at: datetime | None = None
    # the conversation's inbox key (``conversations.membership``); None on questions stored before
    # it was kept, whose inbox the reports look up from the thread
    inbox: str | None = None

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> SatisfactionAsk:
        rated = doc.get("rated_at")
        return cls(
            id=str(doc["_id"]),
            account_id=str(doc["account_id"]),
            thread_id=str(doc["thread_id"]),
            contact_id=str(doc["contact_id"]),
            channel=str(doc["channel"]),
            asked_at=from_epoch_ms(int(doc["asked_at"])),
            language=str(doc.get("language") or "en"),
            agent_id=doc.get("agent_id"),
            team=doc.get("team"),
            skipped=doc.get("skipped"),
            rating=doc.get("rating"),
            comment=doc.get("comment"),
            rated_at=from_epoch_ms(int(rated)) if rated is not None else None,
            inbox=doc.get("inbox"),
        )

    def to_doc(self) -> dict[str, Any]:
        return {
            "_id": self.id,
            "account_id": self.account_id,
            "thread_id": self.thread_id,
            "contact_id": self.contact_id,
            "channel": self.channel,
            "asked_at": epoch_ms(self.asked_at),
            "language": self.language,
            "agent_id": self.agent_id,
            "team": self.team,
            "skipped": self.skipped,
            "rating": self.rating,
            "comment": self.comment,
            "rated_at": epoch_ms(self.rated_at) if self.rated_at else None,
            "inbox": self.inbox,
        }


class SatisfactionRepository(Repository):
    """Questions asked, and the ratings and comments they got."""

    async def record_ask(self, ask: SatisfactionAsk) -> bool:
        """Store the question once (its id derives from the resolution); ``True`` if new."""
        return await self._insert_once("satisfaction", ask.to_doc())

    async def asked_since(self, account_id: str, contact_id: str, since: datetime) -> bool:
        """Whether the contact was asked (on any channel) after ``since``."""
        query = {**exactly(account_id=account_id, contact_id=contact_id), "asked_at": {"$gt": epoch_ms(since)}}
        return await self._db.satisfaction.find_one({**query, "skipped": None}, {"_id": 1}) is not None

    async def latest_ask(
        self, account_id: str, contact_id: str, channel: str, since: datetime
    ) -> SatisfactionAsk | None:
        """The contact's newest question sent on ``channel`` after ``since``."""
        doc = await self._db.satisfaction.find_one(
            {
                **exactly(account_id=account_id, contact_id=contact_id, channel=channel),
                "skipped": None,
                "asked_at": {"$gt": epoch_ms(since)},
            },
            sort=[("asked_at", DESCENDING)],
        )
        return SatisfactionAsk.from_doc(doc) if doc else None

    async def get_ask(self, account_id: str, ask_id: str) -> SatisfactionAsk | None:
        doc = await self._db.satisfaction.find_one({"_id": ask_id, "account_id": account_id})
        return SatisfactionAsk.from_doc(doc) if doc else None

    async def rate(self, account_id: str, ask_id: str, rating: int, now: datetime, comment: str = "") -> bool:
        """Take the rating (and a comment given with it) if the question has none yet; ``False``
        when it was answered already (single use)."""
        update: dict[str, Any] = {"rating": rating, "rated_at": epoch_ms(now)}
        if comment:
            update["comment"] = comment
        result = await self._db.satisfaction.update_one(
            {"_id": ask_id, "account_id": account_id, "rating": None, "skipped": None}, {"$set": update}
        )
        return result.modified_count == 1

    async def add_comment(self, account_id: str, ask_id: str, comment: str) -> bool:
        """The customer's comment on their rating, if there is a rating and no comment yet."""
        result = await self._db.satisfaction.update_one(
            {"_id": ask_id, "account_id": account_id, "rating": {"$ne": None}, "comment": None},
            {"$set": {"comment": comment}},
        )
        return result.modified_count == 1

    async def of_threads(self, account_id: str, thread_ids: Sequence[str]) -> list[SatisfactionAsk]:
        """The questions about these threads, oldest first."""
        docs = await self._find_each("satisfaction", "thread_id", thread_ids, exactly(account_id=account_id))
        return sorted((SatisfactionAsk.from_doc(doc) for doc in docs), key=lambda ask: ask.asked_at)

    async def asked_between(self, account_id: str, start: datetime, end: datetime) -> list[SatisfactionAsk]:
        """Every question of the account asked in ``[start, end)`` (the reports), oldest first."""
        query = {**exactly(account_id=account_id), "asked_at": {"$gte": epoch_ms(start), "$lt": epoch_ms(end)}}
        docs = await self._db.satisfaction.find(query).sort("asked_at", ASCENDING).to_list()
        return [SatisfactionAsk.from_doc(doc) for doc in docs]


def _of_contact(scope: ContactScope) -> dict[str, Any] | None:
    parts: list[dict[str, Any]] = []
    if scope.contact_ids:
        parts.append({"contact_id": {"$in": sorted(set(scope.contact_ids))}})
    if scope.thread_ids:
        parts.append({"thread_id": {"$in": sorted(set(scope.thread_ids))}})
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else {"$or": parts}


# ratings and comments are what the contact said: exported with them, deleted with them
register_holder(query_holder("satisfaction", "satisfaction", _of_contact))
