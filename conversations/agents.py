"""Store operations for people: agents, login sessions, login throttling, shifts, canned responses.

A mixin of ``Store`` (``conversations/store.py``): the same database handle, the same rules —
single-document atomic operations, unique indexes for "at most one", no indexes on array fields.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING, IndexModel, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from conversations.console_models import CannedResponse, Session, Shift
from conversations.models import Agent, Presence, load_time, stored

AGENT_INDEXES: dict[str, list[IndexModel]] = {
    "sessions": [IndexModel([("agent_id", ASCENDING)])],
    "login_failures": [IndexModel([("expires_ms", ASCENDING)])],
    "shifts": [
        IndexModel([("account_id", ASCENDING), ("started_at", DESCENDING)]),
        IndexModel([("open_key", ASCENDING)], unique=True, partialFilterExpression={"open_key": {"$exists": True}}),
    ],
    "canned": [IndexModel([("account_id", ASCENDING), ("shortcut", ASCENDING)], unique=True)],
}


class AgentStore:
    """Agents and their sessions, shifts and canned responses."""

    _db: AsyncDatabase[dict[str, Any]]

    # --- agents --------------------------------------------------------------------------

    async def create_agent(self, agent: Agent) -> bool:
        """Store a new agent; ``False`` if the login is taken in that account."""
        try:
            await self._db.agents.insert_one(agent.to_doc())
            return True
        except DuplicateKeyError:
            return False

    async def get_agent(self, agent_id: str) -> Agent | None:
        doc = await self._db.agents.find_one({"_id": agent_id})
        return Agent.from_doc(doc) if doc else None

    async def agent_by_login(self, account_id: str, login: str) -> Agent | None:
        doc = await self._db.agents.find_one({"account_id": account_id, "login": login})
        return Agent.from_doc(doc) if doc else None

    async def list_agents(self, account_id: str) -> list[Agent]:
        docs = await self._db.agents.find({"account_id": account_id}).sort("login", ASCENDING).to_list()
        return [Agent.from_doc(doc) for doc in docs]

    async def count_agents(self, account_id: str) -> int:
        return await self._db.agents.count_documents({"account_id": account_id})

    async def set_capacity(self, agent_id: str, capacity: int) -> bool:
        """Change an agent's capacity, moving their free slots by the same amount atomically."""
        for _ in range(5):
            agent = await self.get_agent(agent_id)
            if agent is None:
                return False
            result = await self._db.agents.update_one(
                {"_id": agent_id, "capacity": agent.capacity},
                {"$set": {"capacity": capacity}, "$inc": {"free": capacity - agent.capacity}},
            )
            if result.modified_count or agent.capacity == capacity:
                return True
        return False

    async def update_agent(self, agent_id: str, **values: Any) -> None:
        """Set plain fields (name, teams, role, lang, password hash, active)."""
        await self._db.agents.update_one({"_id": agent_id}, {"$set": values})

    async def go_online(self, agent_id: str, load: int, presence: Presence) -> Agent | None:
        """Start taking conversations; ``load`` is recounted here, while nobody can assign to
        the agent (offline agents get no reservations)."""
        agent = await self.get_agent(agent_id)
        if agent is None:
            return None
        doc = await self._db.agents.find_one_and_update(
            {"_id": agent_id, "presence": str(Presence.OFFLINE)},
            {"$set": {"presence": str(presence), "load": load, "free": agent.capacity - load}},
            return_document=ReturnDocument.AFTER,
        )
        return Agent.from_doc(doc) if doc else None

    async def set_presence(self, agent_id: str, presence: Presence, only_from: Presence | None = None) -> bool:
        query: dict[str, Any] = {"_id": agent_id}
        if only_from is not None:
            query["presence"] = str(only_from)
        result = await self._db.agents.update_one(query, {"$set": {"presence": str(presence)}})
        return result.matched_count == 1

    # --- sessions ------------------------------------------------------------------------

    async def create_session(self, session: Session) -> None:
        await self._db.sessions.insert_one(session.to_doc())

    async def get_session(self, session_id: str) -> Session | None:
        doc = await self._db.sessions.find_one({"_id": session_id})
        return Session.from_doc(doc) if doc else None

    async def sessions_by_ids(self, session_ids: list[str]) -> list[Session]:
        docs = await self._db.sessions.find({"_id": {"$in": session_ids}}).to_list()
        return [Session.from_doc(doc) for doc in docs]

    async def agents_by_ids(self, agent_ids: list[str]) -> list[Agent]:
        docs = await self._db.agents.find({"_id": {"$in": agent_ids}}).to_list()
        return [Agent.from_doc(doc) for doc in docs]

    async def touch_session(self, session_id: str, seen_ms: int) -> None:
        await self._db.sessions.update_one({"_id": session_id}, {"$set": {"seen_ms": seen_ms}})

    async def delete_session(self, session_id: str) -> None:
        await self._db.sessions.delete_one({"_id": session_id})

    async def delete_agent_sessions(self, agent_id: str) -> None:
        await self._db.sessions.delete_many({"agent_id": agent_id})

    # --- login throttling ----------------------------------------------------------------

    async def login_throttle(self, key: str) -> dict[str, Any] | None:
        """The failed-login count of ``key`` (``failures``, ``wait_until_ms``, ``expires_ms``, ``rev``)."""
        return await self._db.login_failures.find_one({"_id": key})

    async def claim_login_attempt(self, key: str, rev: int | None, failures: int, wait_until_ms: int,
                                  expires_ms: int) -> bool:
        """Count an attempt, if ``key`` is still at revision ``rev`` (``None``: not stored yet);
        ``False`` when another attempt changed it first (read it again and decide anew)."""
        values = {"failures": failures, "wait_until_ms": wait_until_ms, "expires_ms": expires_ms}
        if rev is None:
            try:
                await self._db.login_failures.insert_one({"_id": key, "rev": 1, **values})
                return True
            except DuplicateKeyError:
                return False
        result = await self._db.login_failures.update_one({"_id": key, "rev": rev}, {"$set": {**values, "rev": rev + 1}})
        return result.modified_count == 1

    async def take_back_login_attempt(self, key: str) -> None:
        await self._db.login_failures.update_one({"_id": key, "failures": {"$gt": 0}},
                                                 {"$inc": {"failures": -1, "rev": 1}})

    async def forget_login_failures(self, key: str, now_ms: int) -> None:
        """Clear ``key``'s count (a login that succeeded), and the counts that expired."""
        await self._db.login_failures.delete_one({"_id": key})
        await self._db.login_failures.delete_many({"expires_ms": {"$lt": now_ms}})

    # --- shifts (the timesheet) ----------------------------------------------------------

    async def open_shift(self, shift: Shift) -> Shift:
        """Record a shift start; an agent already on shift keeps the shift they have."""
        try:
            await self._db.shifts.insert_one(shift.to_doc())
            return shift
        except DuplicateKeyError:
            doc = await self._db.shifts.find_one({"open_key": shift.open_key})
            return Shift.from_doc(doc) if doc else shift

    async def close_shift(
        self, agent_id: str, now: datetime, location: dict[str, float] | None
    ) -> Shift | None:
        doc = await self._db.shifts.find_one({"open_key": agent_id})
        if doc is None:
            return None
        started = load_time(doc["started_at"])
        assert started is not None
        fields: dict[str, Any] = {"ended_at": stored(now), "duration_s": int((now - started).total_seconds())}
        if location is not None:
            fields["end_location"] = location
        closed = await self._db.shifts.find_one_and_update(
            {"_id": doc["_id"], "open_key": agent_id},
            {"$set": fields, "$unset": {"open_key": ""}},
            return_document=ReturnDocument.AFTER,
        )
        return Shift.from_doc(closed) if closed else None

    async def list_shifts(
        self, account_id: str, since: datetime, until: datetime, agent_id: str | None = None
    ) -> list[Shift]:
        query: dict[str, Any] = {"account_id": account_id, "started_at": {"$gte": stored(since), "$lt": stored(until)}}
        if agent_id:
            query["agent_id"] = agent_id
        docs = await self._db.shifts.find(query).sort("started_at", DESCENDING).limit(5000).to_list()
        return [Shift.from_doc(doc) for doc in docs]

    # --- canned responses ----------------------------------------------------------------

    async def list_canned(self, account_id: str) -> list[CannedResponse]:
        docs = await self._db.canned.find({"account_id": account_id}).sort("shortcut", ASCENDING).to_list()
        return [CannedResponse.from_doc(doc) for doc in docs]

    async def put_canned(self, account_id: str, shortcut: str, text: str) -> None:
        await self._db.canned.update_one(
            {"_id": f"{account_id}|{shortcut}"},
            {"$set": {"account_id": account_id, "shortcut": shortcut, "text": text}},
            upsert=True,
        )

    async def delete_canned(self, account_id: str, shortcut: str) -> None:
        await self._db.canned.delete_one({"_id": f"{account_id}|{shortcut}"})

    async def set_account_fields(self, account_id: str, **values: Any) -> None:
        """Per-account console settings (strategy, business hours, location recording)."""
        await self._db.accounts.update_one({"_id": account_id}, {"$set": values})
