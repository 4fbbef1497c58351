"""The human queue: threads handed over by the bot, agent slots, claims, transfers, resolution,
reopening, and the thread timeline (notes and what happened to a thread).

Every transition is one ``find_one_and_update`` guarded by the state it leaves, so two agents or two router processes never both win: an agent's slot is *reserved*
(``free`` decremented where ``free > 0``) before a thread is claimed, and released if the claim
loses, so no agent ends up over capacity.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Mapping
from datetime import datetime
from typing import Any, TypeVar

from pymongo import ASCENDING, DESCENDING, IndexModel, ReturnDocument
from pymongo.errors import DuplicateKeyError

from conversations.agent_models import Agent, Presence
from conversations.client import IndexPlan, Repository
from conversations.filters import exactly, find_sorted, named_fields, plain_parts
from conversations.models import epoch_ms, stored
from conversations.thread_models import Thread, ThreadStatus, TimelineEntry, open_key

T = TypeVar("T")

# The queue's order: most urgent first (highest ``priority``), then longest waiting. Sorted as
# ``neg_priority`` (= -priority, written with every thread) ascending, then ``queued_at``
# ascending, so one index walked in one direction yields the head of the queue at once: the
# embedded server builds every index ascending, and SQLite cannot walk one index in mixed
# directions, so "priority descending, queued_at ascending" sorted every queued thread per claim.
QUEUE_ORDER = [("neg_priority", ASCENDING), ("queued_at", ASCENDING)]

INDEXES: IndexPlan = {
    "threads": [
        IndexModel([("account_id", ASCENDING), ("status", ASCENDING), *QUEUE_ORDER]),
        # the queue's depth over every account (the metrics' gauge)
        IndexModel([("status", ASCENDING)], partialFilterExpression={"status": str(ThreadStatus.QUEUED)}),
    ],
    "timeline": [IndexModel([("contact_id", ASCENDING), ("at", ASCENDING)])],
}


class QueueRepository(Repository):
    """The queue's atomic transitions and the console's reads."""

    async def backfill_queue_order(self) -> None:
        """Give threads stored before ``neg_priority`` existed their place in the queue's order
        (a missing value would sort them first); a no-op once done."""
        missing = {"neg_priority": {"$exists": False}}
        for priority in await self._db.threads.distinct("priority", missing):
            await self._db.threads.update_many(
                {**missing, "priority": priority}, {"$set": {"neg_priority": -int(priority)}}
            )

    async def queue_thread(self, thread_id: str, reason: str, by_message: str, now: datetime) -> Thread | None:
        """Move a bot thread to the human queue; ``None`` if it was not in the bot's hands."""
        doc = await self._db.threads.find_one_and_update(
            {"_id": thread_id, "status": str(ThreadStatus.BOT)},
            {
                "$set": {
                    "status": str(ThreadStatus.QUEUED),
                    "queued_at": epoch_ms(now),
                    "queued_by": by_message,
                    "escalation_reason": reason,
                    "handoff_reason": reason,  # kept when later transfers change escalation_reason
                },
                "$min": {"first_queued_at": epoch_ms(now)},
            },
            return_document=ReturnDocument.AFTER,
        )
        return Thread.from_doc(doc) if doc else None

    async def queue_depth(self, account_id: str | None = None) -> int:
        """How many threads wait for a human, of one account or of every one (the metrics' gauge,
        read at every scrape): through the queue's index (an account's) or the queued threads' own
        (every account's), on either store (``_count``)."""
        found = exactly(status=ThreadStatus.QUEUED, **({"account_id": account_id} if account_id is not None else {}))
        return await self._count("threads", found)

    # --- agent slots ---------------------------------------------------------------------

    async def reserve_agent(self, account_id: str, now_ms: int, **match: Any) -> Agent | None:
        """Take one free slot of the least-loaded online agent matching ``match`` (round robin
        among equals: the one assigned longest ago); ``None`` if nobody has room."""
        doc = await self._db.agents.find_one_and_update(
            {"account_id": account_id, "presence": str(Presence.ONLINE), "active": True, "free": {"$gt": 0}, **match},
            {"$inc": {"free": -1, "load": 1}, "$set": {"last_assigned_ms": now_ms}},
            sort=[("load", ASCENDING), ("last_assigned_ms", ASCENDING)],
            return_document=ReturnDocument.BEFORE,  # see claim_next_queued
        )
        if doc is None:
            return None
        return Agent.from_doc(
            {**doc, "free": doc["free"] - 1, "load": doc.get("load", 0) + 1, "last_assigned_ms": now_ms}
        )

    async def anyone_free(self, account_id: str) -> bool:
        """Whether any online agent of the account has a free slot."""
        match = {"account_id": account_id, "presence": str(Presence.ONLINE), "active": True, "free": {"$gt": 0}}
        return await self._db.agents.find_one(match, {"_id": 1}) is not None

    async def release_agent(self, agent_id: str) -> None:
        """Give back a slot (a claim lost, a conversation resolved or moved on)."""
        await self._db.agents.update_one({"_id": agent_id, "load": {"$gt": 0}}, {"$inc": {"free": 1, "load": -1}})

    async def or_release(self, agent_id: str, work: Awaitable[T | None], thread_id: str | None = None) -> T | None:
        """``work`` (a claim, of ``thread_id`` when it names one), done with a slot reserved for the
        agent. If it loses (``None``) the slot goes back; if it fails (a store outage, a cancel) too,
        unless the thread is the agent's by then (the claim was applied and only its answer lost):
        the agent neither counts a conversation they never got nor goes over capacity."""
        try:
            claimed = await work
        except BaseException:
            with contextlib.suppress(Exception):  # a store still out keeps the slot taken: the shift recounts
                if thread_id is None or not await self._assigned_to(thread_id, agent_id):
                    await self.release_agent(agent_id)
            raise
        if claimed is None:
            await self.release_agent(agent_id)
        return claimed

    async def _assigned_to(self, thread_id: str, agent_id: str) -> bool:
        found = await self._db.threads.find_one(
            exactly(_id=thread_id, assignee=agent_id, status=ThreadStatus.ASSIGNED), {"_id": 1}
        )
        return found is not None

    async def count_assigned(self, agent_id: str) -> int:
        return await self._count("threads", exactly(assignee=agent_id, status=ThreadStatus.ASSIGNED))

    # --- claims and transitions ----------------------------------------------------------

    async def claim_next_queued(
        self, account_id: str, agent_id: str, now: datetime, read_first: bool = False, **match: Any
    ) -> Thread | None:
        """Assign the most urgent queued thread matching ``match`` to ``agent_id``; ``read_first``:
        read the head of the matching queue first, then claim by id (the embedded server's claim
        misses a thread without ``inbox_id`` under an ``inbox_id`` ``$ne``, which its find matches).

        The document comes back as it was *before* and the known change is applied here: asking
        for it *after* costs the embedded server one more read per claim (a third of its work)."""
        query = {**exactly(account_id=account_id, status=ThreadStatus.QUEUED), **match}
        split = await self._client.is_embedded_server()
        if not read_first and not (split and len(plain_parts(query)) > 1):  # else read: see find_sorted
            return await self._claim(query, agent_id, now)
        named = named_fields(query)  # claimed only as read: not moved to another team or inbox meanwhile
        for doc in await find_sorted(self._db.threads, query, QUEUE_ORDER, 100, 0, dict.fromkeys(named, 1), split):
            as_read = exactly(**{name: doc.get(name) for name in named if name != "_id"})
            claimed = await self._claim(
                {**as_read, **exactly(_id=doc["_id"], status=ThreadStatus.QUEUED)}, agent_id, now
            )
            if claimed is not None:
                return claimed
        return None

    async def _claim(self, query: dict[str, Any], agent_id: str, now: datetime) -> Thread | None:
        at = stored(now)
        assigned = {"status": str(ThreadStatus.ASSIGNED), "assignee": agent_id, "assigned_at": at}
        doc = await self._db.threads.find_one_and_update(
            query,
            {"$set": assigned, "$min": {"first_assigned_at": at}},
            sort=QUEUE_ORDER,
            return_document=ReturnDocument.BEFORE,
        )
        if doc is None:
            return None
        first = doc.get("first_assigned_at")
        return Thread.from_doc({**doc, **assigned, "first_assigned_at": at if first is None else min(first, at)})

    async def move_assignment(self, thread_id: str, from_agent: str, to_agent: str, now: datetime) -> Thread | None:
        doc = await self._db.threads.find_one_and_update(
            {"_id": thread_id, "status": str(ThreadStatus.ASSIGNED), "assignee": from_agent},
            {"$set": {"assignee": to_agent, "assigned_at": stored(now), "last_assignee": from_agent}},
            return_document=ReturnDocument.AFTER,
        )
        return Thread.from_doc(doc) if doc else None

    async def requeue(
        self, thread_id: str, from_agent: str | None, team: str, reason: str, now: datetime
    ) -> Thread | None:
        """Put a thread back in the queue (from ``from_agent``, or re-route a queued one)."""
        query: dict[str, Any] = {"_id": thread_id}
        fields: dict[str, Any] = {
            "status": str(ThreadStatus.QUEUED),
            "team": team,
            "queued_at": now,
            "escalation_reason": reason,
        }
        if from_agent is None:
            query["status"] = str(ThreadStatus.QUEUED)
        else:
            query.update(status=str(ThreadStatus.ASSIGNED), assignee=from_agent)
            fields["last_assignee"] = from_agent
        doc = await self._db.threads.find_one_and_update(
            query, {"$set": stored(fields), "$unset": {"assignee": ""}}, return_document=ReturnDocument.AFTER
        )
        return Thread.from_doc(doc) if doc else None

    async def resolve(self, thread_id: str, now: datetime, assignee: str | None) -> Thread | None:
        """Close an open thread; returns it as it was *before*, so the caller can free its agent."""
        query: dict[str, Any] = {
            "_id": thread_id,
            "status": {"$in": [str(ThreadStatus.QUEUED), str(ThreadStatus.ASSIGNED), str(ThreadStatus.BOT)]},
        }
        if assignee is not None:
            query["assignee"] = assignee
        doc = await self._db.threads.find_one_and_update(
            query,
            {
                "$set": {"status": str(ThreadStatus.RESOLVED), "resolved_at": stored(now)},
                "$unset": {"open_key": "", "awaiting_since": ""},
            },
            return_document=ReturnDocument.BEFORE,
        )
        if doc is None:
            return None
        if doc.get("assignee"):
            await self._db.threads.update_one(
                {"_id": thread_id}, {"$set": {"last_assignee": doc["assignee"]}, "$unset": {"assignee": ""}}
            )
        return Thread.from_doc(doc)

    async def last_resolved(
        self, account_id: str, contact_id: str, channel: str, since: datetime, inbox_id: str | None = None
    ) -> Thread | None:
        """The contact's last thread on ``channel`` resolved since ``since``, if it is of ``inbox_id``."""
        # the status checked below, not asked: with it SQLite reads the queue's index (every
        # resolved thread of the account) rather than the contact's threads
        match = exactly(account_id=account_id, contact_id=contact_id, channel=channel)
        if inbox_id is not None:
            match["inbox_id"] = {"$eq": inbox_id}
        docs = (
            await self._db.threads.find(match)  # among the contact's threads (an index), not all of them
            .sort("resolved_at", DESCENDING)
            .limit(1)
            .to_list()
        )
        thread = Thread.from_doc(docs[0]) if docs else None
        if (
            thread is None
            or thread.status != ThreadStatus.RESOLVED
            or thread.resolved_at is None
            or thread.resolved_at < since
            or thread.inbox_id != inbox_id
        ):
            return None
        return thread

    async def reopen(self, thread: Thread, assignee: str | None, now: datetime) -> Thread | None:
        """Reopen a resolved thread to ``assignee`` (or to the queue); ``None`` if it changed
        meanwhile or another thread is already open for the contact on that channel."""
        fields: dict[str, Any] = {
            "open_key": open_key(thread.contact_id, thread.channel, thread.inbox_id),
            "reopened_at": now,
            "last_message_at": now,
            "queued_at": now,
            "escalation_reason": "reopened",
        }
        if assignee:
            fields.update(status=str(ThreadStatus.ASSIGNED), assignee=assignee, assigned_at=now)
        else:
            fields["status"] = str(ThreadStatus.QUEUED)
        try:
            doc = await self._db.threads.find_one_and_update(
                {"_id": thread.id, "status": str(ThreadStatus.RESOLVED)},
                {
                    "$set": stored(fields),
                    "$unset": {"resolved_at": ""},
                    "$min": stored({"first_queued_at": now, **({"first_assigned_at": now} if assignee else {})}),
                },
                return_document=ReturnDocument.AFTER,
            )
        except DuplicateKeyError:
            return None
        return Thread.from_doc(doc) if doc else None

    # --- console reads -------------------------------------------------------------------

    async def queued_threads(
        self, account_id: str, limit: int = 200, skip: int = 0, within: Mapping[str, Any] | None = None
    ) -> list[Thread]:
        """The head of the account's queue (after its first ``skip``), of the threads ``within``
        matches (an agent's inboxes: ``membership.thread_match``)."""
        query = {**exactly(account_id=account_id, status=ThreadStatus.QUEUED), **(within or {})}
        split = await self._client.is_embedded_server()
        docs = await find_sorted(self._db.threads, query, QUEUE_ORDER, limit, skip, split=split)
        return [Thread.from_doc(doc) for doc in docs]

    async def assigned_threads(self, agent_id: str) -> list[Thread]:
        docs = (
            await self._db.threads.find(exactly(assignee=agent_id, status=ThreadStatus.ASSIGNED))
            .sort("last_message_at", DESCENDING)
            .limit(200)
            .to_list()
        )
        return [Thread.from_doc(doc) for doc in docs]

    # --- the timeline --------------------------------------------------------------------

    async def add_timeline(self, entry: TimelineEntry) -> None:
        """Insert the entry; one whose id is there already was added before (a replay)."""
        with contextlib.suppress(DuplicateKeyError):
            await self._db.timeline.insert_one(entry.to_doc())

    async def contact_timeline(self, contact_id: str, limit: int = 300) -> list[TimelineEntry]:
        docs = (
            await self._db.timeline.find(exactly(contact_id=contact_id)).sort("at", DESCENDING).limit(limit).to_list()
        )
        return [TimelineEntry.from_doc(doc) for doc in reversed(docs)]
