"""Campaigns: a message an admin sends first, to an audience of the account's contacts on one channel.

A campaign walks its audience in the order the contacts were created (by id among those of the same
millisecond) and keeps its position (the last contact handled), so a run that stops midway (a
restart, a kill) resumes where it was. Each page reads on from the position through the index of
the account's contacts by creation time: the embedded server cannot read a range of ``_id`` through
an index, and paging by id made every page read the store's every contact in Python. A campaign an
earlier release left midway (its ``cursor``, an id) walks again from the start.

Each recipient is recorded once, under an id derived from campaign and contact
(``derived_id("cmp", "<campaign>:<contact>")``), and their message (which carries its send state)
derives from the same key: a contact handled twice (the page after the position is replayed on
resume, or a whole walk again) is neither recorded nor sent twice. The contacts of a page already
recorded are passed over before anything is sent (``unrecorded``).
"""

from __future__ import annotations

import asyncio
import enum
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar

from pymongo import ASCENDING, DESCENDING, IndexModel, InsertOne, ReturnDocument
from pymongo.errors import BulkWriteError

from conversations.campaign_counts import CampaignCounts
from conversations.client import IndexPlan
from conversations.filters import exactly, newest_page
from conversations.ids import derived_id, new_id
from conversations.models import Document, epoch_ms, from_epoch_ms, load_enum, load_time
from conversations.thread_models import Contact, Thread, open_key
from conversations.threads import ThreadsRepository
from conversations.traffic import Identity

INDEXES: IndexPlan = {
    "campaigns": [
        IndexModel([("account_id", ASCENDING), ("created_at", DESCENDING)]),
        IndexModel([("state", ASCENDING), ("send_at", ASCENDING)]),
    ],
    # a campaign's walk of its audience, and the preview's count
    "contacts": [IndexModel([("account_id", ASCENDING), ("created_at", ASCENDING)])],
    "campaign_recipients": [
        IndexModel([("campaign_id", ASCENDING), ("state", ASCENDING)]),
        IndexModel([("account_id", ASCENDING), ("contact_id", ASCENDING)]),  # a contact's export and erasure
    ],
    "unsubscribe_links": [IndexModel([("account_id", ASCENDING), ("address", ASCENDING)])],  # the same
}


class CampaignState(enum.StrEnum):
    SCHEDULED = "scheduled"  # waits for ``send_at``
    SENDING = "sending"
    DONE = "done"  # every contact of the audience is queued or skipped
    CANCELLED = "cancelled"


class RecipientState(enum.StrEnum):
    QUEUED = "queued"  # handed to the outbox; its message says sent, delivered, read or failed
    SKIPPED = "skipped"  # ``reason`` says why: no identity on the channel, opted out


@dataclass(frozen=True, slots=True)
class Audience:
    """Which contacts of the account a campaign goes to: those with an identity on the campaign's
    channel, narrowed by a thread label, a custom attribute's value, and when they were last in
    touch (the contact's last update: a message from them or an edit)."""

    label: str | None = None
    attribute: str | None = None
    value: str | None = None
    contacted_before: datetime | None = None
    contacted_after: datetime | None = None

    def to_doc(self) -> dict[str, Any]:
        doc: dict[str, Any] = {}
        for key in ("label", "attribute", "value"):
            if getattr(self, key):
                doc[key] = getattr(self, key)
        for key in ("contacted_before", "contacted_after"):
            moment = getattr(self, key)
            if moment is not None:
                doc[key] = epoch_ms(moment)
        return doc

    @classmethod
    def from_doc(cls, doc: dict[str, Any] | None) -> Audience:
        doc = doc or {}
        return cls(
            label=doc.get("label"),
            attribute=doc.get("attribute"),
            value=doc.get("value"),
            contacted_before=load_time(doc.get("contacted_before")),
            contacted_after=load_time(doc.get("contacted_after")),
        )


@dataclass(slots=True)
class Campaign(Document):
    """One campaign: audience, channel, message, schedule, and how far its sending got."""

    LOADERS: ClassVar[dict[str, Callable[[Any], Any]]] = {
        "state": load_enum(CampaignState),
        "audience": Audience.from_doc,
    }

    id: str
    account_id: str
    name: str
    channel: str
    state: CampaignState
    created_at: datetime
    send_at: datetime
    audience: Audience = field(default_factory=Audience)
    text: str = ""
    subject: str | None = None  # e-mail
    # WhatsApp: the configured template as the channel sends it ({"name", "language", "parameters"})
    template: dict[str, Any] | None = None
    created_by: str | None = None
    position: str | None = None  # the last contact handled: ``audience_position``
    finished_at: datetime | None = None
    inbox_id: str | None = None  # one of the account's extra inboxes of the channel (None: its first)

    def to_doc(self) -> dict[str, Any]:
        doc = Document.to_doc(self)
        doc["audience"] = self.audience.to_doc()
        return doc


@dataclass(frozen=True, slots=True)
class Recipient:
    contact_id: str
    state: RecipientState
    reason: str | None = None
    message_id: str | None = None


def recipient_id(campaign_id: str, contact_id: str) -> str:
    return derived_id("cmp", f"{campaign_id}:{contact_id}")


def audience_position(contact: Contact) -> str:
    """Where a walk of an audience is once ``contact`` is handled: its creation time (epoch ms,
    15 digits, so that positions compare as strings in the walk's order) and its id."""
    return f"{epoch_ms(contact.created_at):015d}|{contact.id}"


class CampaignsRepository(CampaignCounts):
    """Creating campaigns, choosing their audience, and recording how far their sending got."""

    async def create_campaign(self, campaign: Campaign) -> Campaign:
        await self._db.campaigns.insert_one(campaign.to_doc())
        return campaign

    @staticmethod
    def new_campaign_id() -> str:
        return new_id("cmp")

    async def get_campaign(self, account_id: str, campaign_id: str) -> Campaign | None:
        doc = await self._db.campaigns.find_one({"_id": campaign_id, "account_id": account_id})
        return Campaign.from_doc(doc) if doc else None

    async def list_campaigns(self, account_id: str, limit: int = 100) -> list[Campaign]:
        cursor = self._db.campaigns.find(exactly(account_id=account_id)).sort("created_at", DESCENDING).limit(limit)
        return [Campaign.from_doc(doc) for doc in await cursor.to_list()]

    async def due_campaigns(self, now: datetime) -> list[Campaign]:
        """Campaigns to send now: scheduled ones whose time came, and sending ones (a run that
        stopped midway is resumed from its position)."""
        # two queries through the (state, send_at) index: the embedded store reads every campaign
        # in Python for an $or
        sending = self._db.campaigns.find(exactly(state=CampaignState.SENDING)).to_list()
        due = {**exactly(state=CampaignState.SCHEDULED), "send_at": {"$lte": epoch_ms(now)}}
        docs = [doc for found in await asyncio.gather(sending, self._db.campaigns.find(due).to_list()) for doc in found]
        return sorted((Campaign.from_doc(doc) for doc in docs), key=lambda campaign: campaign.send_at)

    async def start_sending(self, campaign_id: str) -> Campaign | None:
        doc = await self._db.campaigns.find_one_and_update(
            {"_id": campaign_id, "state": {"$in": [str(CampaignState.SCHEDULED), str(CampaignState.SENDING)]}},
            {"$set": {"state": str(CampaignState.SENDING)}},
            return_document=ReturnDocument.AFTER,
        )
        return Campaign.from_doc(doc) if doc else None

    async def advance_position(self, campaign_id: str, position: str) -> None:
        """Everything up to ``position`` (``audience_position``) is recorded: a resumed run starts after it."""
        await self._db.campaigns.update_one(
            {"_id": campaign_id, "state": str(CampaignState.SENDING)}, {"$max": {"position": position}}
        )

    async def finish_campaign(self, campaign_id: str, now: datetime) -> None:
        await self._db.campaigns.update_one(
            {"_id": campaign_id, "state": str(CampaignState.SENDING)},
            {"$set": {"state": str(CampaignState.DONE), "finished_at": epoch_ms(now)}},
        )

    async def cancel_campaign(self, account_id: str, campaign_id: str) -> bool:
        result = await self._db.campaigns.update_one(
            {
                "_id": campaign_id,
                "account_id": account_id,
                "state": {"$in": [str(CampaignState.SCHEDULED), str(CampaignState.SENDING)]},
            },
            {"$set": {"state": str(CampaignState.CANCELLED)}},
        )
        return result.modified_count == 1

    async def campaign_state(self, campaign_id: str) -> CampaignState | None:
        doc = await self._db.campaigns.find_one({"_id": campaign_id}, {"state": 1})
        return CampaignState(doc["state"]) if doc else None

    # --- the audience ------------------------------------------------------------------------

    async def labelled_contacts(self, account_id: str, label: str) -> frozenset[str]:
        """The contacts of the account's threads labelled ``label``: a label's audience. It reads
        the account's threads, so a campaign's walk reads it once (``audience_page``'s ``labelled``)."""
        found = await self._db.threads.distinct("contact_id", {**exactly(account_id=account_id), "labels": label})
        return frozenset(str(contact) for contact in found)

    async def _audience_query(
        self, account_id: str, channel: str, audience: Audience, labelled: frozenset[str] | None = None
    ) -> dict[str, Any] | None:
        """The audience's contacts; ``None`` when a label narrows it to nobody (an empty ``$in``
        the embedded server would answer by reading every contact)."""
        query: dict[str, Any] = {
            **exactly(account_id=account_id),
            "identities.channel": channel,
            "merged_into": {"$exists": False},
        }
        if audience.attribute:
            query[f"attributes.{audience.attribute}"] = audience.value or ""
        contacted: dict[str, int] = {}
        if audience.contacted_before is not None:
            contacted["$lt"] = epoch_ms(audience.contacted_before)
        if audience.contacted_after is not None:
            contacted["$gt"] = epoch_ms(audience.contacted_after)
        if contacted:
            query["updated_at"] = contacted
        if audience.label:
            if labelled is None:
                labelled = await self.labelled_contacts(account_id, audience.label)
            if not labelled:
                return None
            query["_id"] = {"$in": sorted(labelled)}
        return query

    async def audience_size(self, account_id: str, channel: str, audience: Audience) -> int:
        """How many contacts the audience holds now (the preview before sending)."""
        query = await self._audience_query(account_id, channel, audience)
        return 0 if query is None else await self._count("contacts", query)

    async def audience_page(
        self, campaign: Campaign, after: str | None, limit: int, labelled: frozenset[str] | None = None
    ) -> list[Contact]:
        """The next contacts of the campaign's audience after the position ``after``
        (``audience_position``; ``None``: from the start), oldest first. ``labelled``: the
        ``labelled_contacts`` of a label's audience, read once for the walk (else read here)."""
        query = await self._audience_query(campaign.account_id, campaign.channel, campaign.audience, labelled)
        if query is None:
            return []
        at, before_id = None, None
        if after is not None:
            created, _, before_id = after.partition("|")
            at = from_epoch_ms(int(created))
        docs = await newest_page(self._db.contacts, query, "created_at", limit, at, before_id, oldest=True)
        return [Contact.from_doc(doc) for doc in docs]

    # --- recipients --------------------------------------------------------------------------

    async def record_recipients(self, campaign: Campaign, recipients: Sequence[Recipient]) -> set[str]:
        """Record each recipient once; returns the contact ids recorded by this call (a contact
        recorded before, by a run that stopped, is left as it was)."""
        if not recipients:
            return set()
        docs = [
            {
                "_id": recipient_id(campaign.id, r.contact_id),
                "campaign_id": campaign.id,
                "account_id": campaign.account_id,
                "contact_id": r.contact_id,
                "state": str(r.state),
                **({"reason": r.reason} if r.reason else {}),
                **({"message_id": r.message_id} if r.message_id else {}),
            }
            for r in recipients
        ]
        try:
            await self._db.campaign_recipients.bulk_write([InsertOne(d) for d in docs], ordered=False)
        except BulkWriteError as error:
            failed = {
                docs[e["index"]]["contact_id"] for e in error.details.get("writeErrors", []) if e["code"] == 11000
            }
            if len(failed) != len(error.details.get("writeErrors", [])):
                raise
            return {r.contact_id for r in recipients} - failed
        return {r.contact_id for r in recipients}

    async def unrecorded(self, campaign: Campaign, contacts: Sequence[Contact]) -> list[Contact]:
        """``contacts`` (in their order) not yet recorded as the campaign's recipients, in one read
        of their records' ids: a page replayed after a stop, or an audience walked again (see the
        module's docstring), sends to, paces for and opens threads for the others only."""
        wanted = {recipient_id(campaign.id, contact.id): contact for contact in contacts}
        found = await self._db.campaign_recipients.find({"_id": {"$in": list(wanted)}}, {"_id": 1}).to_list()
        recorded = {doc["_id"] for doc in found}
        return [contact for key, contact in wanted.items() if key not in recorded]

    # --- e-mail unsubscribe links --------------------------------------------------------------

    async def unsubscribe_link(self, campaign: Campaign, address: str) -> str:
        """A new unguessable token (144 random bits) that unsubscribes ``address`` from the
        campaign's channel of the campaign's account, for its one-click unsubscribe link."""
        token = secrets.token_urlsafe(18)
        await self._db.unsubscribe_links.insert_one(
            {
                "_id": token,
                "account_id": campaign.account_id,
                "channel": campaign.channel,
                "address": address,
                "campaign_id": campaign.id,
            }
        )
        return token

    async def unsubscribe_target(self, token: str) -> tuple[str, str, str] | None:
        """(account, channel, address) the token unsubscribes, or ``None`` for an unknown token."""
        doc = await self._db.unsubscribe_links.find_one({"_id": token})
        return (str(doc["account_id"]), str(doc["channel"]), str(doc["address"])) if doc else None

    # --- the recipients' threads ---------------------------------------------------------------

    async def open_threads_for(
        self, account_id: str, recipients: Sequence[tuple[str, Identity]], now: datetime, inbox_id: str | None = None
    ) -> dict[str, Thread]:
        """Each recipient's open thread on its identity's channel (in ``inbox_id``), the missing ones
        opened in one batch (as ``ThreadsRepository.open_thread`` would: a customer's thread wins)."""
        keys = {open_key(c, i.channel, inbox_id): (c, i) for c, i in recipients}
        found = {
            str(doc["contact_id"]): Thread.from_doc(doc) for doc in await self._find_each("threads", "open_key", keys)
        }
        missing = [
            ThreadsRepository.new_thread(account_id, contact_id, identity, key, now, inbox_id)
            for key, (contact_id, identity) in keys.items()
            if contact_id not in found
        ]
        if missing:
            try:
                await self._db.threads.insert_many([t.to_doc() for t in missing], ordered=False)
            except BulkWriteError as error:
                if any(e["code"] != 11000 for e in error.details.get("writeErrors", [])):
                    raise
                lost = {missing[e["index"]].open_key for e in error.details["writeErrors"]}
                for doc in await self._find_each("threads", "open_key", lost):
                    found[str(doc["contact_id"])] = Thread.from_doc(doc)
                missing = [t for t in missing if t.open_key not in lost]
            found.update({t.contact_id: t for t in missing})
        return found
