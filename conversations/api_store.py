"""Store reads of the REST API: threads and contacts of one account, newest first, with a time
cursor for paging. A mixin of ``Store``; every query names the account (its index is in
``store.INDEXES``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo import DESCENDING
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from conversations.filters import exactly
from conversations.models import Contact, Thread, epoch_ms


class ApiReads:
    """Listing threads and contacts for the API."""

    _db: AsyncDatabase[dict[str, Any]]

    async def list_threads(
        self, account_id: str, *, limit: int, before: datetime | None = None, before_id: str | None = None,
        **match: str,
    ) -> list[Thread]:
        """The account's threads by last activity, newest first; ``match`` filters on status,
        channel, assignee or contact_id."""
        query = exactly(account_id=account_id, **match)
        docs = await _page(self._db.threads, query, "last_message_at", limit, before, before_id)
        return [Thread.from_doc(doc) for doc in docs]

    async def list_contacts(self, account_id: str, *, limit: int, before: datetime | None = None,
                            before_id: str | None = None) -> list[Contact]:
        """The account's contacts by last activity, newest first (merged ones left out)."""
        query = {**exactly(account_id=account_id), "merged_into": {"$exists": False}}
        docs = await _page(self._db.contacts, query, "updated_at", limit, before, before_id)
        return [Contact.from_doc(doc) for doc in docs]


async def _page(collection: AsyncCollection[dict[str, Any]], query: dict[str, Any], field: str, limit: int,
                before: datetime | None, before_id: str | None) -> list[dict[str, Any]]:
    """A page of ``query``'s records, newest ``field`` first and by id among records of the same
    time, after the previous page's last one: older than ``before``, or as old with a lower id than
    ``before_id`` (the time alone skips the rest of a millisecond's records — busy traffic writes
    several — when a page ends among them). Two queries rather than one ``$or``, which the
    embedded server answers by reading the whole collection."""
    order = [(field, DESCENDING), ("_id", DESCENDING)]
    if before is None:
        return await collection.find(query).sort(order).limit(limit).to_list()
    at = epoch_ms(before)
    docs: list[dict[str, Any]] = []
    if before_id is not None:  # the embedded server reads every document for a range on _id: filtered here
        same_time = await collection.find({**query, field: {"$eq": at}}).to_list()
        docs = sorted((d for d in same_time if str(d["_id"]) < before_id), key=lambda d: str(d["_id"]),
                      reverse=True)[:limit]
    if len(docs) < limit:
        docs += await collection.find({**query, field: {"$lt": at}}).sort(order).limit(limit - len(docs)).to_list()
    return docs
