"""The e-mail channel's records: thread keys, per-thread mail headers, raw sources.

E-mail threads are found by keys rather than by "the contact's open thread": the Message-IDs of
every mail in a thread (the customer's and ours) and the thread's token. ``email_keys`` maps
``<account>|<key>`` to a thread (an ``_id`` lookup, no array index); ``email_threads`` keeps what a
reply needs (subject, token, the last Message-ID and the References chain).

A thread belongs to one inbox: the keys of an account's mailbox inbox are its own
(``<account>|<inbox>|<key>``; the account's first mailbox keeps ``<account>|<key>``), so a mail
to one mailbox never continues a thread of another, whatever Message-ID or token it carries.

E-mail threads themselves open under a key of their own (``threads.open_keyed_thread``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bson import Binary
from pymongo.errors import BulkWriteError, DuplicateKeyError

from conversations.client import Repository
from conversations.filters import exactly
from conversations.models import epoch_ms

REFERENCES_KEPT = 20  # References headers grow with every reply; keep the newest ones


@dataclass(frozen=True)
class EmailThreadInfo:
    """What replying in an e-mail thread needs."""

    thread_id: str
    subject: str
    token: str
    last_message_id: str | None
    references: tuple[str, ...]


class MailRepository(Repository):
    """E-mail thread keys, mail headers per thread and inbound mails' sources."""

    async def threads_by_email_keys(
        self, account_id: str, keys: Sequence[str], inbox_id: str | None = None
    ) -> dict[str, tuple[str, str]]:
        """``key -> (thread id, contact id)`` for those of ``keys`` that name a thread of the
        account's inbox ``inbox_id`` (``None``: its first mailbox)."""
        if not keys:
            return {}
        prefix = _key_prefix(account_id, inbox_id)
        docs = await self._db.email_keys.find({"_id": {"$in": [prefix + key for key in keys]}}).to_list()
        return {str(d["_id"])[len(prefix) :]: (str(d["thread_id"]), str(d["contact_id"])) for d in docs}

    async def link_email_keys(
        self,
        account_id: str,
        thread_id: str,
        contact_id: str,
        keys: Sequence[str],
        now: datetime,
        inbox_id: str | None = None,
    ) -> None:
        """Let later mails to the inbox carrying any of ``keys`` find ``thread_id`` (first link wins)."""
        prefix = _key_prefix(account_id, inbox_id)
        docs = [
            {"_id": prefix + key, "thread_id": thread_id, "contact_id": contact_id, "at": epoch_ms(now)}
            for key in dict.fromkeys(keys)
        ]
        if not docs:
            return
        try:
            await self._db.email_keys.insert_many(docs, ordered=False)
        except BulkWriteError as exc:
            if any(error.get("code") != 11000 for error in exc.details.get("writeErrors", [])):
                raise

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

    async def legacy_mail_sender(self, account_id: str, legacy_key: str) -> str | None:
        """The sender of a mail recorded under the key of earlier versions (its bare Message-ID,
        before mails were told apart by Message-ID and sender), so that its redelivery is still a
        duplicate; ``None`` if none."""
        doc = await self._db.messages.find_one(
            exactly(account_id=account_id, channel="email", external_id=legacy_key), {"sender": 1}
        )
        sender = doc.get("sender") if doc else None
        return str(sender.get("address", "")) if isinstance(sender, dict) else None

    async def keep_email_source(self, account_id: str, message_id: str, raw: bytes) -> None:
        """Keep the original of an inbound mail (what the customer really sent), once."""
        try:
            await self._db.email_sources.insert_one(
                {"_id": message_id, "account_id": account_id, "size": len(raw), "raw": Binary(raw)}
            )
        except DuplicateKeyError:
            pass

    async def email_source(self, message_id: str) -> bytes | None:
        doc = await self._db.email_sources.find_one({"_id": message_id})
        return bytes(doc["raw"]) if doc else None


def _key_prefix(account_id: str, inbox_id: str | None) -> str:
    # a key starts "mid:" or "token:", an inbox id "inb_": an inbox's keys never meet the first mailbox's
    return f"{account_id}|" if inbox_id is None else f"{account_id}|{inbox_id}|"
