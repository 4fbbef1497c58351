"""Domain verification of mailbox inboxes, as the API and the console do it.

A mailbox the install's SMTP listener feeds (no ``imap_host``) receives mail only once its account
has proven that the address's domain is its own: the inbox shows a token, the account publishes it
as a TXT record ``omnirouter-verification=<token>`` on the domain, and the Verify button (or
``POST …/inboxes/{inbox}/verify``) looks it up. Until then the listener answers mail to the address
as it answers an unknown recipient (``550``). A verified domain is the account's alone: another
account's mailbox there is refused (``409 domain_taken``), and the account's other addresses there
need no second proof. Another account's mailboxes there, added before (their claims never proven),
are released when the domain is verified: disabled, their addresses free for the owner to add.
Exempt: the install's own account in the install's own mail domain (its settings file is the
proof), and mailboxes read over IMAP (their login is the proof; the listener takes no mail for them
unless their domain is verified too).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bot import audit
from bot.handlers.email.domain_proof import Found, look_for_token
from bot.handlers.email.settings import EmailSettings
from bot.settings import Settings
from conversations.models import utcnow
from conversations.repositories import Repositories
from conversations.tenant_models import Inbox

TAKEN = "taken"  # an outcome beside the lookup's: the domain is another account's
# what each outcome means, for the API (the console translates its own words)
OUTCOMES = {
    Found.PROVEN: "the TXT record was found: the domain is verified",
    Found.NO_RECORD: "the domain has no TXT record omnirouter-verification=…: add the record shown, then verify again",
    Found.WRONG_TOKEN: "the domain's omnirouter-verification record has another token: publish the one shown",
    Found.NO_DOMAIN: "the domain does not exist in the DNS",
    Found.NO_ANSWER: "no name server answered: try again later",
    TAKEN: "the domain is another account's",
}


def _domain(config: Mapping[str, Any]) -> str:
    return str(config.get("address") or "").strip().lower().rpartition("@")[2]


def exempt(settings: Settings, account_id: str, domain: str) -> bool:
    """Whether the account needs no proof of ``domain``: the install's own mail domain, for the
    install's own account."""
    own = settings.section(EmailSettings).address.rpartition("@")[2].lower()
    return bool(own) and domain == own and account_id == settings.account.id


def proof_needed(settings: Settings, inbox: Inbox) -> str | None:
    """The domain a mailbox inbox must prove before the listener feeds it (``None``: none)."""
    domain = _domain(inbox.config) if inbox.channel == "email" else ""
    if not domain or inbox.config.get("imap_host") or exempt(settings, inbox.account_id, domain):
        return None
    return domain


async def claim_domain(
    store: Repositories, settings: Settings, account_id: str, channel: str, config: Mapping[str, Any]
) -> None:
    """Make the account's claim (its token) on the domain of a mailbox it adds or changes, before
    the mailbox is stored (a mailbox with no claim on its domain is an earlier release's)."""
    domain = _domain(config) if channel == "email" else ""
    if domain and not exempt(settings, account_id, domain):
        await store.mail_domains.claim(account_id, domain, utcnow())


async def verification(store: Repositories, settings: Settings, inbox: Inbox) -> dict[str, Any] | None:
    """What an inbox shows of its domain's proof: the domain, whether it is verified, and the TXT
    record to publish; ``None`` for an inbox that needs none."""
    domain = proof_needed(settings, inbox)
    if domain is None:
        return None
    claim = await store.mail_domains.claim_of(inbox.account_id, domain)
    if claim is None:  # made when the mailbox was saved; made here for one that lacks it all the same
        claim = await store.mail_domains.claim(inbox.account_id, domain, utcnow())
    return {
        "domain": domain,
        "verified": claim.verified,
        "record_type": "TXT",
        "record_name": domain,
        "record": claim.record,
    }


async def verify_domain(store: Repositories, settings: Settings, inbox: Inbox, taken_by_another: bool) -> str:
    """Look up the inbox's domain's TXT records for its account's token and record the domain as
    verified when it is there; the outcome (a :class:`Found`, or ``TAKEN``). ``taken_by_another``:
    another account holds the domain already (then nothing is looked up)."""
    domain = proof_needed(settings, inbox)
    assert domain is not None, "verify only an inbox that needs proof"
    claim = await store.mail_domains.claim(inbox.account_id, domain, utcnow())
    if claim.verified:
        await release_squatted(store, inbox.account_id, domain)  # any still held since (an older store's)
        return Found.PROVEN
    if taken_by_another:
        return TAKEN
    found = await look_for_token(domain, claim.token, settings.section(EmailSettings).dns_servers)
    if found != Found.PROVEN:
        return found
    if not await store.mail_domains.mark_verified(inbox.account_id, domain, utcnow()):
        return TAKEN
    await release_squatted(store, inbox.account_id, domain)
    return found


async def release_squatted(store: Repositories, owner: str, domain: str) -> list[Inbox]:
    """Give the addresses of ``domain`` back to ``owner``, who has just proven it: other accounts'
    mailboxes there (their claims unproven, or the domain would not have been ``owner``'s to
    verify) are disabled and lose their address, each with the reason their admins see
    (:func:`release_notice`) and a line in their account's audit log."""
    released = await store.inboxes.release_mailboxes(domain, owner, utcnow())
    for inbox in released:
        await audit.record(store, inbox.account_id, "system", "inbox.release", inbox.id, domain=domain)
    return released


async def take_back(store: Repositories, account_id: str, route: str | None) -> bool:
    """Whether the mailbox address ``route`` was just freed for the account: it is in a domain the
    account has proven, and another account's mailbox held it (released now); the caller that
    found the address taken tries again."""
    if not route or not route.startswith("email:"):
        return False
    domain = route.rpartition("@")[2]
    if await store.mail_domains.verified_owner(domain) != account_id:
        return False
    return bool(await release_squatted(store, account_id, domain))


def release_notice(inbox: Inbox) -> dict[str, Any] | None:
    """What the API shows of a mailbox released to its domain's owner (``None``: not released)."""
    if not inbox.released_domain:
        return None
    domain = inbox.released_domain
    return {
        "domain": domain,
        "at": inbox.released_at.isoformat() if inbox.released_at else None,
        "reason": f"another account verified the mail domain {domain}: this inbox no longer receives mail for"
        f" {inbox.config.get('address', '')} and stays disabled until it is given an address in another domain",
    }
