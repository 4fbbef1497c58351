"""Store operations of the audit log: who did what to which record, and when — written by
``bot/audit.py``, browsed and exported on the admin pages.

A mixin of ``Store``; the indexes it reads by are in ``privacy_store.PRIVACY_INDEXES``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from pymongo import DESCENDING
from pymongo.asynchronous.database import AsyncDatabase

from conversations.errors import translating_outages
from conversations.models import AuditEntry


@dataclass(frozen=True)
class AuditQuery:
    """A filter over one account's audit log; times are epoch ms, ``[since_ms, until_ms)``."""

    account_id: str
    actor: str = ""
    action: str = ""  # an action, or a family such as "thread." (every thread action)
    since_ms: int | None = None
    until_ms: int | None = None

    def to_filter(self) -> dict[str, Any]:
        found: dict[str, Any] = {"account_id": self.account_id}
        if self.actor:
            found["actor"] = self.actor
        if self.action.endswith("."):
            found["action"] = {"$gte": self.action, "$lt": self.action[:-1] + "/"}  # "/" sorts after "."
        elif self.action:
            found["action"] = self.action
        at: dict[str, int] = {}
        if self.since_ms is not None:
            at["$gte"] = self.since_ms
        if self.until_ms is not None:
            at["$lt"] = self.until_ms
        if at:
            found["at"] = at
        return found


class AuditStore:
    _db: AsyncDatabase[dict[str, Any]]

    @translating_outages
    async def add_audit(self, entry: AuditEntry) -> None:
        await self._db.audit.insert_one(entry.to_doc())

    @translating_outages
    async def audit_page(self, query: AuditQuery, page: int, size: int) -> tuple[list[AuditEntry], bool]:
        """One page (from 1) of matching entries, newest first, and whether more follow."""
        docs = await self._db.audit.find(query.to_filter()).sort([("at", DESCENDING), ("_id", DESCENDING)]) \
            .skip((page - 1) * size).limit(size + 1).to_list()
        return [AuditEntry.from_doc(doc) for doc in docs[:size]], len(docs) > size

    async def audit_entries(self, query: AuditQuery, limit: int) -> AsyncIterator[AuditEntry]:
        """Matching entries, newest first, at most ``limit`` (streamed, for the CSV export)."""
        cursor = self._db.audit.find(query.to_filter()).sort([("at", DESCENDING), ("_id", DESCENDING)]).limit(limit)
        async for doc in cursor:
            yield AuditEntry.from_doc(doc)

    @translating_outages
    async def audit_actions(self, account_id: str) -> list[str]:
        """The actions recorded in the account so far (for the filter's choices)."""
        return sorted(str(a) for a in await self._db.audit.distinct("action", {"account_id": account_id}))
