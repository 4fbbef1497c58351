"""Contacts: one person with every address they have written from, found or created on first
sight and merged across channels when a phone number joins them.

An identity link (``identities``, ``_id`` = ``<account>|<channel>:<address>``) points at the
contact behind each address. Find-or-create steps use deterministic ids (``derived_id``), so a
replay after a crash or a race between router processes lands on the same ``_id`` and the unique
index turns it into a no-op.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING, TEXT, IndexModel, UpdateOne
from pymongo.errors import DuplicateKeyError

from conversations.client import IndexPlan, Repository, StoreClient
from conversations.filters import exactly, newest_page
from conversations.ids import derived_id
from conversations.models import epoch_ms
from conversations.search_words import search_text, text_filter
from conversations.thread_models import Contact
from conversations.traffic import Identity


def _text_index() -> IndexModel:
    """Contact search (``search_words.py``): a contact's name, an identity link's address."""
    return IndexModel(
        [("search_text", TEXT)], name="search_text", default_language="none", language_override="search_language"
    )


INDEXES: IndexPlan = {
    "contacts": [IndexModel([("account_id", ASCENDING), ("updated_at", DESCENDING)]), _text_index()],
    "identities": [IndexModel([("contact_id", ASCENDING)]), _text_index()],
}


def named(name: str | None) -> dict[str, Any]:
    """The fields to set for a contact's ``name``: the name and its search terms."""
    return {"name": name, "search_text": search_text(name or "")}


class ContactsRepository(Repository):
    """Finding, creating, merging and listing contacts."""

    def __init__(self, client: StoreClient) -> None:
        super().__init__(client)
        self._links = client.batcher("identities.contact", self._find_links)  # the hot path's read

    async def find_or_create_contact(
        self, account_id: str, identity: Identity, name: str | None, now: datetime, phone: str | None = None
    ) -> str:
        """The id of the contact behind ``identity``, creating contact and links on first sight.

        Merge rule: a phone number the channel vouches for (WhatsApp, SMS, a shared Telegram
        contact) is itself an identity, ``phone:<E.164>``; whoever writes from any channel with
        that number is the same contact. A new contact's id derives from its phone number when
        there is one, so first messages racing in on two channels still make one contact. A number
        vouched for later (a Telegram user sharing their own contact) joins the known contact, or
        merges it into the contact that had the number first (``join_phone``).
        """
        link_id = f"{account_id}|{identity.key}"
        phone_id = f"{account_id}|phone:{phone}" if phone else None
        # both links in one (batched) read: a returning customer costs no more than this
        if phone_id is None:
            linked, by_phone = await self._links.submit(link_id), None
        else:
            linked, by_phone = await asyncio.gather(self._links.enqueue(link_id), self._links.enqueue(phone_id))
        if linked is not None:
            if phone and by_phone != linked:  # a number new to this contact: join or merge
                return await self.join_phone(account_id, linked, phone, now)
            return linked
        contact_id = by_phone or derived_id("con", phone_id or link_id)
        contact = {
            "_id": contact_id,
            "account_id": account_id,
            "identities": [identity.to_doc()],
            "created_at": epoch_ms(now),
            "updated_at": epoch_ms(now),
        }
        if name:
            contact.update(named(name))
        if not await self._insert_once("contacts", contact):
            await self._db.contacts.update_one(
                {"_id": contact_id},
                {"$addToSet": {"identities": identity.to_doc()}, "$set": {"updated_at": epoch_ms(now)}},
            )
        links = [(link_id, identity)]
        if phone_id is not None and phone is not None:
            links.append((phone_id, Identity("phone", phone)))
        for key, address in links:
            await self._insert_once("identities", _link(key, account_id, contact_id, address))
        link = await self._db.identities.find_one({"_id": link_id}, {"contact_id": 1})
        assert link is not None
        return str(link["contact_id"])

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
                await self._db.identities.insert_one(_link(phone_id, account_id, contact_id, Identity("phone", phone)))
            except DuplicateKeyError:
                return await self.join_phone(account_id, contact_id, phone, now)
            return contact_id
        owner = str(link["contact_id"])
        if owner != contact_id:
            await self.merge_contacts(owner, contact_id, now)
        return owner

    async def merge_contacts(self, target: str, source: str, now: datetime) -> None:
        """Fold contact ``source`` into ``target`` (see :meth:`join_phone`)."""
        await self._db.identities.update_many({"contact_id": source}, {"$set": {"contact_id": target}})
        source_doc = await self._db.contacts.find_one_and_update(
            {"_id": source}, {"$set": {"merged_into": target, "updated_at": epoch_ms(now)}}
        )
        if source_doc is not None and source_doc.get("identities"):
            await self._db.contacts.update_one(
                {"_id": target},
                {
                    "$addToSet": {"identities": {"$each": source_doc["identities"]}},
                    "$set": {"updated_at": epoch_ms(now)},
                },
            )
        async for thread in self._db.threads.find({"contact_id": source}):
            update: dict[str, Any] = {"contact_id": target}
            if "open_key" in thread:
                update["open_key"] = f"{target}:{thread['channel']}"
            try:
                await self._db.threads.update_one({"_id": thread["_id"]}, {"$set": update})
            except DuplicateKeyError:  # the target has its own open thread there: keep both apart
                await self._db.threads.update_one(
                    {"_id": thread["_id"]}, {"$set": {"contact_id": target}, "$unset": {"open_key": ""}}
                )
        await self._db.messages.update_many({"contact_id": source}, {"$set": {"contact_id": target}})

    async def add_given_identity(self, account_id: str, contact_id: str, identity: Identity, now: datetime) -> bool:
        """Link an address the customer gave (not one a channel vouched for) to their contact, unless
        another contact has it already: an unverified address never merges two people. ``True``
        when the address leads to this contact now."""
        key = f"{account_id}|{identity.key}"
        await self._insert_once("identities", _link(key, account_id, contact_id, identity))
        link = await self._db.identities.find_one({"_id": key}, {"contact_id": 1})
        if link is None or str(link["contact_id"]) != contact_id:
            return False
        await self._db.contacts.update_one(
            exactly(_id=contact_id, account_id=account_id),
            {"$addToSet": {"identities": identity.to_doc()}, "$set": {"updated_at": epoch_ms(now)}},
        )
        return True

    # --- reading ----------------------------------------------------------------------------

    async def update_contact(self, account_id: str, contact_id: str, now: datetime, **values: Any) -> bool:
        """Set the contact's ``name`` and/or ``attributes`` (an agent's edit); ``False`` if it is not
        the account's."""
        if "name" in values:
            values = {**values, **named(values["name"])}
        result = await self._db.contacts.update_one(
            exactly(_id=contact_id, account_id=account_id), {"$set": {**values, "updated_at": epoch_ms(now)}}
        )
        return result.matched_count == 1

    async def get_contact(self, contact_id: str) -> Contact | None:
        doc = await self._db.contacts.find_one({"_id": contact_id})
        return Contact.from_doc(doc) if doc else None

    async def contacts_by_id(self, contact_ids: list[str]) -> dict[str, Contact]:
        docs = await self._db.contacts.find({"_id": {"$in": contact_ids}}).to_list()
        return {str(doc["_id"]): Contact.from_doc(doc) for doc in docs}

    async def list_contacts(
        self, account_id: str, *, limit: int, before: datetime | None = None, before_id: str | None = None
    ) -> list[Contact]:
        """The account's contacts by last activity, newest first (merged ones left out)."""
        query = {**exactly(account_id=account_id), "merged_into": {"$exists": False}}
        docs = await newest_page(self._db.contacts, query, "updated_at", limit, before, before_id)
        return [Contact.from_doc(doc) for doc in docs]

    async def import_contacts(self, contacts: Sequence[Contact]) -> None:
        """Store whole contacts as they are, in one command (seeded data; an import). Their
        identity links are not made: ``find_or_create_contact`` does not find them by address."""
        if contacts:
            await self._db.contacts.insert_many([contact.to_doc() for contact in contacts], ordered=False)

    async def contact_by_identity(self, account_id: str, channel: str, address: str) -> str | None:
        """The contact who writes from ``channel:address``, if any."""
        link = await self._db.identities.find_one({"_id": f"{account_id}|{channel}:{address}"}, {"contact_id": 1})
        return str(link["contact_id"]) if link else None

    async def identities_of(self, account_id: str, contact_id: str) -> list[Identity]:
        """The addresses that lead to the contact (its identity links, a vouched phone number
        among them)."""
        links = await self._db.identities.find({"contact_id": contact_id, "account_id": account_id}).to_list()
        return [Identity.from_doc(link) for link in links]

    async def contact_by_address(self, account_id: str, address: str) -> str | None:
        """The contact who writes from ``address`` on any channel, if exactly one does."""
        links = await self._db.identities.find(
            {"account_id": account_id, "address": address}, {"contact_id": 1}
        ).to_list()
        found = {str(link["contact_id"]) for link in links}
        return found.pop() if len(found) == 1 else None

    async def contacts_named(self, account_id: str, text: str, limit: int = 20) -> list[Contact]:
        """Contacts whose name contains ``text`` (any case), most recently active first."""
        docs = (
            await self._db.contacts.find(
                {
                    "account_id": account_id,
                    "name": {"$regex": re.escape(text), "$options": "i"},
                    "merged_into": {"$exists": False},
                }
            )
            .sort("updated_at", DESCENDING)
            .limit(limit)
            .to_list()
        )
        return [Contact.from_doc(doc) for doc in docs]

    async def search_contacts(self, account_id: str, text: str, limit: int = 20) -> list[Contact]:
        """Contacts (not merged away) with every word of ``text`` in their name or in one of their
        addresses (phone, e-mail, chat id), the last word as a beginning, as messages are searched
        (``search_words.py``), most recently active first. Both are read through text indexes."""
        found = text_filter(text)
        if found is None:
            return []
        # a bare account equality: the text index leads (see MessagesRepository.search_messages)
        links = await self._db.identities.find({"account_id": account_id, **found}, {"contact_id": 1}).to_list()
        linked = sorted({str(link["contact_id"]) for link in links})
        live = {"account_id": account_id, "merged_into": {"$exists": False}}
        by_name = await self._db.contacts.find({**live, **found}).sort("updated_at", DESCENDING).limit(limit).to_list()
        by_address = await self._db.contacts.find({**live, "_id": {"$in": linked}}).to_list() if linked else []
        docs = {str(doc["_id"]): doc for doc in [*by_name, *by_address]}
        newest = sorted(docs.values(), key=lambda doc: (doc.get("updated_at") or 0, str(doc["_id"])), reverse=True)
        return [Contact.from_doc(doc) for doc in newest[:limit]]

    async def backfill_search_text(self, batch: int = 500) -> None:
        """Give contacts and identity links stored by earlier releases their search terms (at
        start-up, one write command per batch)."""
        for collection, source, terms in (("contacts", "name", search_text), ("identities", "address", address_terms)):
            missing = {"search_text": {"$exists": False}}
            while docs := await self._db[collection].find(missing, {source: 1}).limit(batch).to_list():
                await self._db[collection].bulk_write(
                    [
                        UpdateOne({"_id": d["_id"]}, {"$set": {"search_text": terms(str(d.get(source) or ""))}})
                        for d in docs
                    ],
                    ordered=False,
                )

    async def _find_links(self, keys: Sequence[str]) -> list[str | None]:
        docs = await self._db.identities.find({"_id": {"$in": list(set(keys))}}, {"contact_id": 1}).to_list()
        owners = {doc["_id"]: str(doc["contact_id"]) for doc in docs}
        return [owners.get(key) for key in keys]


def _link(key: str, account_id: str, contact_id: str, address: Identity) -> dict[str, Any]:
    """An identity link document: the address points at the contact, and is found by its terms."""
    return {
        "_id": key,
        "account_id": account_id,
        "contact_id": contact_id,
        **address.to_doc(),
        "search_text": address_terms(address.address),
    }


def address_terms(address: str) -> str:
    """An address's search terms: the address whole and each of its parts, so that the domain of
    an e-mail address ("example.com") finds it as the part of the address it always matched."""
    parts = search_text(" ".join(re.split(r"[\W_]+", address)))
    return " ".join(dict.fromkeys(f"{search_text(address)} {parts}".split()))
