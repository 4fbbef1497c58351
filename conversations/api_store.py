"""Store reads of the REST API: threads and contacts of one account, newest first, with a time
cursor for paging. A mixin of ``Store``; every query names the account (its index is in
``store.INDEXES``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo import DESCENDING
from pymongo.asynchronous.database import AsyncDatabase

from conversations.filters import exactly
from conversations.models import Contact, Thread, epoch_ms


class ApiReads:
    """Listing threads and contacts for the API."""

    _db: AsyncDatabase[dict[str, Any]]

    async def list_threads(
        self, account_id: str, *, limit: int, before: datetime | None = None, **match: str
    ) -> list[Thread]:
        """The account's threads by last activity, newest first; ``match`` filters on status,
        channel, assignee or contact_id."""
        query = exactly(account_id=account_id, **match)
        if before is not None:
            query["last_message_at"] = {"$lt": epoch_ms(before)}
        docs = await self._db.threads.find(query).sort("last_message_at", DESCENDING).limit(limit).to_list()
        return [Thread.from_doc(doc) for doc in docs]

    async def list_contacts(self, account_id: str, *, limit: int, before: datetime | None = None) -> list[Contact]:
        """The account's contacts by last activity, newest first (merged ones left out)."""
        query = {**exactly(account_id=account_id), "merged_into": {"$exists": False}}
        if before is not None:
            query["updated_at"] = {"$lt": epoch_ms(before)}
        docs = await self._db.contacts.find(query).sort("updated_at", DESCENDING).limit(limit).to_list()
        return [Contact.from_doc(doc) for doc in docs]
