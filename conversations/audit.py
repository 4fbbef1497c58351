"""The audit log: who did what to which record, and when — written by ``bot/audit.py``, browsed
and exported on the admin pages.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING, IndexModel

from conversations.client import IndexPlan, Repository
from conversations.filters import exactly
from conversations.ids import new_id
from conversations.tenant_models import AuditEntry

INDEXES: IndexPlan = {
    "audit": [
        IndexModel([("account_id", ASCENDING), ("at", DESCENDING)]),
        IndexModel([("account_id", ASCENDING), ("actor", ASCENDING), ("at", ASCENDING)]),
        IndexModel([("account_id", ASCENDING), ("action", ASCENDING), ("at", ASCENDING)]),
        IndexModel([("target", ASCENDING)]),
    ]
}


@dataclass(frozen=True)
class AuditQuery:
    """A filter over one account's audit log; times are epoch ms, ``[since_ms, until_ms)``."""

    account_id: str
    actor: str = ""
    action: str = ""  # an action, or a family such as "thread." (every thread action)
    since_ms: int | None = None
    until_ms: int | None = None

    def to_filter(self) -> dict[str, Any]:
        found: dict[str, Any] = exactly(account_id=self.account_id)  # $eq: its indexes serve it
        if self.actor:
            found["actor"] = {"$eq": self.actor}
        if self.action.endswith("."):
            found["action"] = {"$gte": self.action, "$lt": self.action[:-1] + "/"}  # "/" sorts after "."
        elif self.action:
            found["action"] = {"$eq": self.action}
        at: dict[str, int] = {}
        if self.since_ms is not None:
            at["$gte"] = self.since_ms
        if self.until_ms is not None:
            at["$lt"] = self.until_ms
        if at:
            found["at"] = at
        return found


class AuditRepository(Repository):
    """Writing and reading the audit log."""

    async def record_audit(
        self, account_id: str, actor: str, action: str, target: str, now: datetime, **details: Any
    ) -> None:
        entry = AuditEntry(
            id=new_id("aud"), account_id=account_id, actor=actor, action=action, target=target, at=now, details=details
        )
        await self._db.audit.insert_one(entry.to_doc())

    async def add_audit(self, entry: AuditEntry) -> None:
        await self._db.audit.insert_one(entry.to_doc())

    async def audit_page(self, query: AuditQuery, page: int, size: int) -> tuple[list[AuditEntry], bool]:
        """One page (from 1) of matching entries, newest first, and whether more follow."""
        docs = (
            await self._db.audit.find(query.to_filter())
            .sort([("at", DESCENDING), ("_id", DESCENDING)])
            .skip((page - 1) * size)
            .limit(size + 1)
            .to_list()
        )
        return [AuditEntry.from_doc(doc) for doc in docs[:size]], len(docs) > size

    async def audit_entries(self, query: AuditQuery, limit: int) -> AsyncIterator[AuditEntry]:
        """Matching entries, newest first, at most ``limit`` (streamed, for the CSV export)."""
        cursor = self._db.audit.find(query.to_filter()).sort([("at", DESCENDING), ("_id", DESCENDING)]).limit(limit)
        async for doc in cursor:
            yield AuditEntry.from_doc(doc)

    async def audit_actions(self, account_id: str) -> list[str]:
        """The actions recorded in the account so far (for the filter's choices)."""
        return sorted(str(a) for a in await self._db.audit.distinct("action", exactly(account_id=account_id)))
