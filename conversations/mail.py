"""Store operations of the e-mail channel: thread keys, per-thread mail headers, raw sources.

E-mail threads are found by keys rather than by "the contact's open thread": the Message-IDs of
every mail in a thread (the customer's and ours) and the thread's token. ``email_keys`` maps
``<account>|<key>`` to a thread (an ``_id`` lookup, no array index); ``email_threads`` keeps what a
reply needs (subject, token, the last Message-ID and the References chain).

A mixin of :class:`conversations.store.Store`; it uses the store's database handle.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bson import Binary
from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError

from conversations.errors import StoreError, translating_outages
from conversations.ids import new_id
from conversations.models import Identity, Thread, ThreadStatus, epoch_ms

REFERENCES_KEPT = 20  # References headers grow with every reply; keep the newest ones


@dataclass(frozen=True)
class EmailThreadInfo:
    """What replying in an e-mail thread needs."""

    thread_id: str
    subject: str
    token: str
    last_message_id: str | None
    references: tuple[str, ...]


class EmailStoreMixin:
    _db: AsyncDatabase[dict[str, Any]]

    @translating_outages
    async def threads_by_email_keys(
        self, account_id: str, keys: Sequence[str]
    ) -> dict[str, tuple[str, str]]:
        """``key -> (thread id, contact id)`` for those of ``keys`` that name a thread."""
        if not keys:
            return {}
        ids = [f"{account_id}|{key}" for key in keys]
        docs = await self._db.email_keys.find({"_id": {"$in": ids}}).to_list()
        prefix = len(account_id) + 1
        return {str(d["_id"])[prefix:]: (str(d["thread_id"]), str(d["contact_id"])) for d in docs}

    @translating_outages
    async def link_email_keys(
        self, account_id: str, thread_id: str, contact_id: str, keys: Sequence[str], now: datetime
    ) -> None:
        """Let later mails carrying any of ``keys`` find ``thread_id`` (first link wins)."""
        docs = [
            {"_id": f"{account_id}|{key}", "thread_id": thread_id, "contact_id": contact_id, "at": epoch_ms(now)}
            for key in dict.fromkeys(keys)
        ]
        if not docs:
            return
        try:
            await self._db.email_keys.insert_many(docs, ordered=False)
        except BulkWriteError as exc:
            if any(error.get("code") != 11000 for error in exc.details.get("writeErrors", [])):
                raise

    @translating_outages
    async def open_keyed_thread(
        self, account_id: str, contact_id: str, identity: Identity, open_key: str, now: datetime
    ) -> Thread:
        """Open a thread under ``open_key`` (one per key however many processes race), or return
        the one already open under it, its last activity set to ``now``."""
        thread = Thread(
            id=new_id("thr"), account_id=account_id, contact_id=contact_id, channel=identity.channel,
            address=identity.address, status=ThreadStatus.BOT, opened_at=now, last_message_at=now,
            open_key=open_key,
        )
        for _ in range(5):
            try:
                await self._db.threads.insert_one(thread.to_doc())
                return thread
            except DuplicateKeyError:
                doc = await self._db.threads.find_one_and_update(
                    {"open_key": open_key}, {"$set": {"last_message_at": epoch_ms(now)}},
                    return_document=ReturnDocument.AFTER,
                )
                if doc is not None:
                    return Thread.from_doc(doc)
        raise StoreError(f"could not open a thread for {open_key}")

    @translating_outages
    async def touch_thread_if_open(self, thread_id: str, now: datetime) -> Thread | None:
        """The thread with its last activity set to ``now``, unless it is resolved."""
        doc = await self._db.threads.find_one_and_update(
            {"_id": thread_id, "open_key": {"$exists": True}},
            {"$set": {"last_message_at": epoch_ms(now)}},
            return_document=ReturnDocument.AFTER,
        )
        return Thread.from_doc(doc) if doc else None

    @translating_outages
    async def note_email_message(
        self, account_id: str, thread_id: str, subject: str, token: str, message_id: str | None
    ) -> None:
        """Remember the thread's subject and token (first ones win) and its newest Message-ID."""
        query: dict[str, Any] = {"_id": thread_id}
        update: dict[str, Any] = {"$setOnInsert": {"account_id": account_id, "subject": subject, "token": token}}
        if message_id:
            query["last_message_id"] = {"$ne": message_id}  # a replay adds nothing
            update["$set"] = {"last_message_id": message_id}
            update["$push"] = {"references": {"$each": [message_id], "$slice": -REFERENCES_KEPT}}
        try:
            await self._db.email_threads.update_one(query, update, upsert=True)
        except DuplicateKeyError:
            pass  # noted before

    @translating_outages
    async def email_thread_info(self, thread_id: str) -> EmailThreadInfo | None:
        doc = await self._db.email_threads.find_one({"_id": thread_id})
        if doc is None:
            return None
        return EmailThreadInfo(
            thread_id=thread_id,
            subject=str(doc.get("subject", "")),
            token=str(doc.get("token", "")),
            last_message_id=doc.get("last_message_id"),
            references=tuple(doc.get("references", [])),
        )

    @translating_outages
    async def keep_email_source(self, account_id: str, message_id: str, raw: bytes) -> None:
        """Keep the original of an inbound mail (what the customer really sent), once."""
        try:
            await self._db.email_sources.insert_one(
                {"_id": message_id, "account_id": account_id, "size": len(raw), "raw": Binary(raw)}
            )
        except DuplicateKeyError:
            pass

    @translating_outages
    async def email_source(self, message_id: str) -> bytes | None:
        doc = await self._db.email_sources.find_one({"_id": message_id})
        return bytes(doc["raw"]) if doc else None
