"""Mail domains that accounts claim for their listener-fed mailboxes, and the proof that a domain
is the account's (a DNS TXT record with the claim's token).

The install's SMTP listener routes mail by recipient address, so an account that could take an
address in any domain could read mail meant for another business once that business points its MX
at the install. A claim is one document per account and domain, with a random token the account
publishes as ``omnirouter-verification=<token>``; once the router has found it, the claim is
verified, and a partial unique index on the domain of verified claims makes a domain one account's
at most. Claims made before verification existed (mailboxes of an earlier release) are taken as
verified when the store is upgraded: those mailboxes keep receiving mail.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, IndexModel
from pymongo.errors import DuplicateKeyError

from conversations.client import IndexPlan, Repository
from conversations.models import utcnow
from conversations.personal_data import declare_not_personal

INDEXES: IndexPlan = {
    "mail_domains": [
        IndexModel([("account_id", ASCENDING)]),
        # one verified claim per domain across the install: a verified claim names its domain in
        # ``owner_of`` (a string: the embedded store gives a date set by ``$set`` back as a string)
        IndexModel([("owner_of", ASCENDING)], unique=True, partialFilterExpression={"owner_of": {"$type": "string"}}),
    ]
}
TOKEN_PREFIX = "omnirouter-verification="


@dataclass(frozen=True)
class DomainClaim:
    """An account's claim on a mail domain: the token it must publish, and since when it is proven
    (``None``: not yet); ``how``: ``dns`` (its TXT record found) or ``upgrade`` (an earlier release's)."""

    account_id: str
    domain: str
    token: str
    verified_at: datetime | None = None
    how: str = ""

    @property
    def record(self) -> str:
        """The TXT record's text the account publishes on the domain."""
        return TOKEN_PREFIX + self.token

    @property
    def verified(self) -> bool:
        return self.verified_at is not None


def _claim_id(account_id: str, domain: str) -> str:
    return f"{account_id}/{domain.lower()}"


class MailDomainsRepository(Repository):
    """Accounts' claims on mail domains and their verification."""

    async def claim(self, account_id: str, domain: str, now: datetime) -> DomainClaim:
        """The account's claim on ``domain``, made (with a new token) if it has none yet."""
        domain = domain.lower()
        await self._db.mail_domains.update_one(
            {"_id": _claim_id(account_id, domain)},
            {
                "$setOnInsert": {
                    "account_id": account_id,
                    "domain": domain,
                    "token": secrets.token_urlsafe(24),
                    "created_at": now,
                }
            },
            upsert=True,
        )
        found = await self.claim_of(account_id, domain)
        assert found is not None
        return found

    async def claim_of(self, account_id: str, domain: str) -> DomainClaim | None:
        doc = await self._db.mail_domains.find_one({"_id": _claim_id(account_id, domain)})
        return _claim(doc) if doc else None

    async def is_verified(self, account_id: str, domain: str) -> bool:
        claim = await self.claim_of(account_id, domain)
        return claim is not None and claim.verified

    async def verified_owner(self, domain: str) -> str | None:
        """The account whose claim on ``domain`` is verified, if any."""
        doc = await self._db.mail_domains.find_one({"owner_of": domain.lower()})
        return str(doc["account_id"]) if doc else None

    async def mark_verified(self, account_id: str, domain: str, now: datetime, how: str = "dns") -> bool:
        """Record the account's claim on ``domain`` as proven (made if it has none); ``False`` when
        another account's claim on it is verified already."""
        domain = (await self.claim(account_id, domain, now)).domain
        try:
            await self._db.mail_domains.update_one(
                {"_id": _claim_id(account_id, domain), "owner_of": None},
                {"$set": {"owner_of": domain, "verified_at": now.isoformat(), "how": how}},
            )
        except DuplicateKeyError:  # another account's claim on the domain is verified
            return False
        return True

    async def grandfather_listener_mailboxes(self) -> int:
        """Take as verified the domains of the listener-fed mailboxes an earlier release made (a
        mailbox with no claim on its domain: this release claims before it adds one), so they keep
        receiving mail after the upgrade; returns how many were taken."""
        docs = await self._db.inboxes.find({"channel": "email"}, {"account_id": 1, "route": 1, "config": 1}).to_list()
        taken = 0
        for doc in docs:
            route, config = str(doc.get("route") or ""), doc.get("config") or {}
            if not route.startswith("email:") or "@" not in route or config.get("imap_host"):
                continue
            account_id, domain = str(doc["account_id"]), route.rpartition("@")[2]
            if await self.claim_of(account_id, domain) is None:
                taken += await self.mark_verified(account_id, domain, utcnow(), "upgrade")
        return taken


def _claim(doc: dict[str, Any]) -> DomainClaim:
    verified = doc.get("verified_at") if doc.get("owner_of") else None
    if isinstance(verified, str):
        verified = datetime.fromisoformat(verified)
    return DomainClaim(
        str(doc["account_id"]),
        str(doc["domain"]),
        str(doc["token"]),
        verified if isinstance(verified, datetime) else None,
        str(doc.get("how") or ""),
    )


declare_not_personal("mail_domains", "the businesses' claims on their mail domains and their proof")
