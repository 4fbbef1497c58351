"""Store operations the messenger channels need: message edits, the customer-service window,
phone numbers joining contacts (and the merge that follows). Per-account channel settings live
in ``tenant_store`` (their secrets are sealed there).

A mixin of :class:`conversations.store.Store` (it uses the store's database handle), kept apart so
each domain's persistence stays readable.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from conversations.errors import translating_outages as _outages
from conversations.models import Direction, Inbound, Message, epoch_ms

if TYPE_CHECKING:
    from pymongo.asynchronous.database import AsyncDatabase

class ChannelStoreMixin:
    """Persistence for Telegram and WhatsApp specifics (see the module docstring)."""

    _db: AsyncDatabase[dict[str, Any]]

    # --- edits ---------------------------------------------------------------------------

    @_outages
    async def apply_edit(self, edited: Inbound, edited_at: datetime) -> Message | None:
        """Make a stored inbound message read as ``edited``; earlier versions go to ``edits``.

        Returns the updated message, the unchanged one when this edit is not newer than the last
        one applied (a redelivery or a late, older edit), or ``None`` when the original was never
        recorded (the caller records the edited message as a new one).
        """
        key = {
            "account_id": edited.account_id,
            "channel": edited.channel,
            "external_id": edited.external_id,
            "direction": str(Direction.IN),
        }
        at_ms = epoch_ms(edited_at)
        for _ in range(3):  # an optimistic update: retried if another edit lands in between
            doc = await self._db.messages.find_one(key)
            if doc is None:
                return None
            if doc.get("edited_ms", -1) >= at_ms:
                return Message.from_doc(doc)
            # the whole list is set, not $push-ed: the embedded server stores a pushed document
            # as a JSON string
            edits = [*doc.get("edits", []), {"text": doc["text"], "replaced_ms": at_ms}]
            changed = await self._db.messages.find_one_and_update(
                {"_id": doc["_id"], "text": doc["text"]},  # unchanged since read (edit order: above)
                {
                    "$set": {
                        "text": edited.text,
                        "attachments": [a.to_doc() for a in edited.attachments],
                        "edited_ms": at_ms,
                        "edits": edits,
                    }
                },
                return_document=ReturnDocument.AFTER,
            )
            if changed is not None:
                return Message.from_doc(changed)
        return Message.from_doc(doc) if doc is not None else None

    # --- the customer-service window -------------------------------------------------------

    @_outages
    async def extend_service_window(self, thread_id: str, ends_at: datetime) -> None:
        """Record when the thread's customer-service window closes; it only ever moves later.

        Kept as epoch milliseconds with ``$max``: the embedded server compares dates at one-second
        precision, stores a date written by ``$set`` as a string, and under load sometimes fails
        to match an ``$or`` / ``$exists`` guard on a just-inserted document.
        """
        await self._db.threads.update_one({"_id": thread_id}, {"$max": {"wa_window_ends_ms": epoch_ms(ends_at)}})

    # --- phone numbers join contacts -------------------------------------------------------

    @_outages
    async def join_phone(self, account_id: str, contact_id: str, phone: str, now: datetime) -> str:
        """Attach a vouched phone number to a known contact; returns the contact to use.

        If the number already belongs to another contact, that contact (the first to claim the
        number) absorbs this one: identities, threads and messages move over, and this contact is
        marked ``merged_into``. Every step is idempotent, so a crash mid-merge is finished by the
        next message.
        """
        phone_id = f"{account_id}|phone:{phone}"
        link = await self._db.identities.find_one({"_id": phone_id}, {"contact_id": 1})
        if link is None:
            try:
                await self._db.identities.insert_one(
                    {"_id": phone_id, "account_id": account_id, "contact_id": contact_id,
                     "channel": "phone", "address": phone}
                )
            except DuplicateKeyError:
                return await self.join_phone(account_id, contact_id, phone, now)
            return contact_id
        owner = str(link["contact_id"])
        if owner != contact_id:
            await self.merge_contacts(owner, contact_id, now)
        return owner

    @_outages
    async def merge_contacts(self, target: str, source: str, now: datetime) -> None:
        """Fold contact ``source`` into ``target`` (see :meth:`join_phone`)."""
        await self._db.identities.update_many({"contact_id": source}, {"$set": {"contact_id": target}})
        source_doc = await self._db.contacts.find_one_and_update(
            {"_id": source}, {"$set": {"merged_into": target, "updated_at": epoch_ms(now)}}
        )
        if source_doc is not None and source_doc.get("identities"):
            await self._db.contacts.update_one(
                {"_id": target},
                {"$addToSet": {"identities": {"$each": source_doc["identities"]}}, "$set": {"updated_at": epoch_ms(now)}},
            )
        async for thread in self._db.threads.find({"contact_id": source}):
            update: dict[str, Any] = {"contact_id": target}
            if "open_key" in thread:
                update["open_key"] = f"{target}:{thread['channel']}"
            try:
                await self._db.threads.update_one({"_id": thread["_id"]}, {"$set": update})
            except DuplicateKeyError:  # the target has its own open thread there: keep both apart
                await self._db.threads.update_one({"_id": thread["_id"]}, {"$set": {"contact_id": target}, "$unset": {"open_key": ""}})
        await self._db.messages.update_many({"contact_id": source}, {"$set": {"contact_id": target}})
