"""Agents: the people who answer customers, their capacity and presence, shifts (the timesheet)
and canned responses. Signing in (sessions, throttling, second factors) is ``sign_in.py``; an
agent's slots in the queue are reserved and released by ``queue.py``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING, IndexModel, ReturnDocument
from pymongo.errors import DuplicateKeyError

from conversations.agent_models import Agent, CannedResponse, Presence, Shift
from conversations.client import IndexPlan, Repository
from conversations.filters import exactly
from conversations.models import load_time, stored

INDEXES: IndexPlan = {
    "agents": [IndexModel([("account_id", ASCENDING), ("login", ASCENDING)], unique=True)],
    "shifts": [
        IndexModel([("account_id", ASCENDING), ("started_at", DESCENDING)]),
        IndexModel([("open_key", ASCENDING)], unique=True, partialFilterExpression={"open_key": {"$exists": True}}),
    ],
    "canned": [IndexModel([("account_id", ASCENDING), ("shortcut", ASCENDING)], unique=True)],
}


class AgentsRepository(Repository):
    """Agents, their shifts and canned responses."""

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

    async def agents_by_ids(self, agent_ids: list[str]) -> list[Agent]:
        docs = await self._db.agents.find({"_id": {"$in": agent_ids}}).to_list()
        return [Agent.from_doc(doc) for doc in docs]

    # --- shifts (the timesheet) ----------------------------------------------------------

    async def open_shift(self, shift: Shift) -> Shift:
        """Record a shift start; an agent already on shift keeps the shift they have."""
        try:
            await self._db.shifts.insert_one(shift.to_doc())
            return shift
        except DuplicateKeyError:
            doc = await self._db.shifts.find_one({"open_key": shift.open_key})
            return Shift.from_doc(doc) if doc else shift

    async def close_shift(self, agent_id: str, now: datetime, location: dict[str, float] | None) -> Shift | None:
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
        query = {
            **exactly(account_id=account_id, **({"agent_id": agent_id} if agent_id else {})),
            "started_at": {"$gte": stored(since), "$lt": stored(until)},
        }
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
