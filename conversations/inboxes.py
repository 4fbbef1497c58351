"""Inboxes: the channel instances of an account beyond the one its channel settings describe.

An account's channel settings (the settings file for the install's own account, ``accounts.<id>.
channels.<channel>`` for the others) are its first inbox of that channel; every inbox more is a
document here. Secrets are sealed as an account's channel secrets are, but bound to the inbox
(``inbox:<id>``): a sealed token copied from one inbox to another does not open. An inbox that a
provider names in its webhooks (a WhatsApp ``phone_number_id``) has a ``route``, unique across the
install, so one number can never deliver into two inboxes or two accounts. A mailbox whose address
another account takes back by proving its mail domain is released: disabled, without a route, and
marked with that domain (``release_mailboxes``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, IndexModel, ReturnDocument
from pymongo.errors import DuplicateKeyError

from conversations.client import NO_KEY, IndexPlan, Repository
from conversations.filters import exactly
from conversations.ids import new_id
from conversations.models import epoch_ms
from conversations.personal_data import declare_not_personal
from conversations.sealing import is_secret_field
from conversations.tenant_models import Inbox

INDEXES: IndexPlan = {
    "inboxes": [
        IndexModel([("account_id", ASCENDING), ("channel", ASCENDING)]),
        IndexModel([("route", ASCENDING)], unique=True, partialFilterExpression={"route": {"$type": "string"}}),
    ]
}


RELEASE_FIELDS = ("released_domain", "released_at")  # what a mailbox released to a domain's owner records


def sealing_scope(inbox_id: str) -> str:
    """What an inbox's secrets are sealed for, beside its account."""
    return f"inbox:{inbox_id}"


class InboxesRepository(Repository):
    """Accounts' extra inboxes, their settings opened on the way out and sealed on the way in."""

    async def create_inbox(
        self,
        account_id: str,
        channel: str,
        name: str,
        config: Mapping[str, Any],
        now: datetime,
        route: str | None,
        routing: Mapping[str, Any] | None = None,
    ) -> Inbox | None:
        """A new inbox; ``None`` when ``route`` is another inbox's already."""
        own = {k: v for k, v in (routing or {}).items() if v is not None} or None
        inbox = Inbox(new_id("inb"), account_id, channel, name, now, route=route, routing=own)
        doc = inbox.to_doc()
        doc["config"] = self._client.require_sealer().seal_fields(config, account_id, sealing_scope(inbox.id))
        try:
            await self._db.inboxes.insert_one(doc)
        except DuplicateKeyError:
            return None
        inbox.config = dict(config)
        return inbox

    async def get_inbox(self, inbox_id: str) -> Inbox | None:
        doc = await self._db.inboxes.find_one({"_id": inbox_id})
        return self._opened(doc) if doc else None

    async def inbox_routing(self, inbox_id: str) -> dict[str, Any]:
        """The inbox's own routing (what it handles otherwise than its account), with its
        ``greeting`` (a setting of its channel's, in its config, never sealed); ``{}``: none."""
        # the whole config (its secrets still sealed): the embedded store gives a dotted
        # projection back as a flat "config.greeting" key, MongoDB as a nested one
        doc = await self._db.inboxes.find_one({"_id": inbox_id}, {"routing": 1, "config": 1})
        own = own_routing((doc or {}).get("routing"))
        greeting = ((doc or {}).get("config") or {}).get("greeting")
        if isinstance(greeting, str) and greeting.strip():
            own["greeting"] = greeting
        return own

    async def inbox_strategies(self, account_id: str) -> dict[str, str]:
        """The queue strategy of each of the account's inboxes that sets its own, by inbox id."""
        docs = await self._db.inboxes.find(exactly(account_id=account_id), {"routing": 1}).to_list()
        strategies = {str(doc["_id"]): own_routing(doc.get("routing")).get("strategy") for doc in docs}
        return {inbox_id: str(strategy) for inbox_id, strategy in strategies.items() if strategy}

    async def inbox_by_route(self, route: str) -> Inbox | None:
        doc = await self._db.inboxes.find_one({"route": route})
        return self._opened(doc) if doc else None

    async def list_inboxes(self, account_id: str, channel: str | None = None) -> list[Inbox]:
        match: dict[str, Any] = {"account_id": account_id}
        if channel is not None:
            match["channel"] = channel
        docs = await self._db.inboxes.find(match).sort("created_at", ASCENDING).to_list()
        return [self._opened(doc) for doc in docs]

    async def mail_domain_accounts(self, domain: str, read_over_imap: bool = False) -> set[str]:
        """The accounts with a mailbox (enabled or not) whose address is in ``domain``; with
        ``read_over_imap``, only those with such a mailbox that is read over IMAP."""
        match: dict[str, Any] = {"channel": "email"}
        if read_over_imap:
            match["config.imap_host"] = {"$nin": [None, ""]}
        docs = await self._db.inboxes.find(match, {"account_id": 1, "route": 1}).to_list()
        suffix = "@" + domain.lower()
        return {str(doc["account_id"]) for doc in docs if str(doc.get("route") or "").endswith(suffix)}

    async def inboxes_of_channel(self, channel: str) -> list[Inbox]:
        """Every account's enabled inboxes of ``channel`` (the mailboxes the router reads)."""
        docs = await self._db.inboxes.find({"channel": channel, "disabled": {"$ne": True}}).to_list()
        return [self._opened(doc) for doc in docs]

    async def update_inbox(
        self, account_id: str, inbox_id: str, values: Mapping[str, Any], route: str | None = None, **fields: Any
    ) -> Inbox | bool | None:
        """Change some settings (secrets sealed; a secret left out keeps its value) and plain fields
        (``name``, ``disabled``) of one of the account's inboxes. ``None``: no such inbox in the
        account; ``False``: ``route`` is another inbox's."""
        sealed = self._client.require_sealer().seal_fields(values, account_id, sealing_scope(inbox_id))
        update: dict[str, Any] = {**{f"config.{k}": v for k, v in sealed.items()}, **fields}
        changes: dict[str, Any] = {"$set": update}
        if route is not None:
            update["route"] = route
            changes["$unset"] = dict.fromkeys(RELEASE_FIELDS, "")  # a route of its own again: not released
        if not update:
            return await self.get_inbox(inbox_id)
        try:
            doc = await self._db.inboxes.find_one_and_update(
                {"_id": inbox_id, "account_id": account_id}, changes, return_document=ReturnDocument.AFTER
            )
        except DuplicateKeyError:
            return False
        if (
            doc is None
            and route is not None
            and await self._db.inboxes.count_documents({"_id": inbox_id, "account_id": account_id}, limit=1)
        ):
            return False  # the embedded store answers a unique key's refusal with no document, not E11000
        return self._opened(doc) if doc else None

    async def release_mailboxes(self, domain: str, owner: str, now: datetime) -> list[Inbox]:
        """Free every address in ``domain`` that a listener-fed mailbox of another account than
        ``owner`` holds (``owner`` has just proven the domain its own, so those claims were never
        proven; a mailbox read over IMAP has proven its address with its login and keeps it): each
        such inbox, enabled or not, is disabled, loses its route (the address is free to take) and
        records the domain and when; the inboxes released (those whose address had not changed
        meanwhile)."""
        suffix = "@" + domain.lower()
        found = self._db.inboxes.find({"channel": "email", "account_id": {"$ne": owner}}, {"route": 1, "config": 1})
        held = [
            (doc["_id"], doc["route"])
            async for doc in found
            if str(doc.get("route") or "").endswith(suffix) and not (doc.get("config") or {}).get("imap_host")
        ]
        released = []
        for inbox_id, route in held:
            done = await self._db.inboxes.update_one(
                {"_id": inbox_id, "route": route},  # an address changed meanwhile is not this domain's
                {
                    "$set": {"disabled": True, "released_domain": domain.lower(), "released_at": epoch_ms(now)},
                    "$unset": {"route": ""},
                },
            )
            if done.modified_count == 1 and (inbox := await self.get_inbox(inbox_id)) is not None:
                released.append(inbox)
        return released

    def _opened(self, doc: Mapping[str, Any]) -> Inbox:
        inbox = Inbox.from_doc(doc)
        inbox.routing = own_routing(inbox.routing) or None
        config = inbox.config or {}
        secret = [k for k, v in config.items() if is_secret_field(k) and v not in ("", None)]
        if not secret:
            return inbox
        if self._client.sealer is None:  # a CLI command that only needs the inbox's other fields
            inbox.config = {k: v for k, v in config.items() if k not in secret}
            inbox.sealing_problems = dict.fromkeys(secret, NO_KEY)
            return inbox
        inbox.config, problems = self._client.sealer.unseal_fields(config, inbox.account_id, sealing_scope(inbox.id))
        inbox.sealing_problems = problems or None
        return inbox


declare_not_personal("inboxes", "the businesses' channel instances and their credentials (sealed)")


def own_routing(stored: Any) -> dict[str, Any]:
    """An inbox's routing as stored, without the settings given back to the account (``None``),
    and ``bot`` a boolean (the embedded store gives a boolean set inside a document back as 0 or 1)."""
    if not isinstance(stored, dict):
        return {}
    own = {k: v for k, v in stored.items() if v is not None}
    if "bot" in own:
        own["bot"] = bool(own["bot"])
    return own
