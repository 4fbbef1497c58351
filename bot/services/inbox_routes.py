"""Where an inbox's traffic comes in: the route a provider names it by (a WhatsApp number, a Twilio
number, a mail address), unique across the install, and the checks that keep one route one inbox's:
the install's own settings, the accounts' own settings, other accounts' mail domains."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bot.handlers.email.mailboxes import mailbox_route
from bot.handlers.email.settings import EmailSettings
from bot.handlers.kit.twilio_lines import number_route
from bot.handlers.sms.settings import SmsSettings
from bot.handlers.whatsapp.settings import WhatsappSettings
from bot.settings import Settings
from conversations.repositories import Repositories


def route_of(channel: str, config: Mapping[str, Any]) -> str | None:
    """What the provider names the inbox by in its webhooks, unique across the install."""
    if channel == "whatsapp" and isinstance(config.get("phone_number_id"), str):
        return f"whatsapp:{config['phone_number_id']}"
    if channel == "sms" and isinstance(config.get("from_number"), str):
        return number_route(config["from_number"])
    if channel == "email" and isinstance(config.get("address"), str):
        return mailbox_route(config["address"])
    return None


def install_route(settings: Settings, route: str | None, account_id: str | None = None) -> bool:
    """Whether ``route`` is the install's own (its ``[sms]`` number, its ``[whatsapp]`` number, its
    ``[email]`` address): no inbox may take it. For another account than the install's
    (``account_id``), every address in the install's own mail domain is the install's too: its SMTP
    listener takes that whole domain."""
    number, address = settings.section(SmsSettings).from_number, settings.section(EmailSettings).address
    if bool(number) and route == number_route(number):
        return True
    whatsapp = settings.section(WhatsappSettings).phone_number_id
    if bool(whatsapp) and route == f"whatsapp:{whatsapp}":
        return True
    if not address or not route:
        return False
    if route == mailbox_route(address):
        return True
    domain = "@" + address.rpartition("@")[2].lower()
    return account_id not in (None, settings.account.id) and route.startswith("email:") and route.endswith(domain)


FIRST_INBOX, NEW_INBOX = "first", ""  # where a number is being set: the account's own settings, a new inbox


async def number_elsewhere(
    store: Repositories, settings: Settings, route: str | None, account_id: str, here: str
) -> bool:
    """Whether a WhatsApp number ``route`` already delivers somewhere else than ``here``, where it is
    being set (``FIRST_INBOX``: the account ``account_id``'s own settings; an inbox's id;
    ``NEW_INBOX``): the install's own number, an account's own settings, or an inbox. A number
    delivers into one inbox only."""
    if not route or not route.startswith("whatsapp:"):
        return False
    if install_route(settings, route, account_id):
        return True
    owners = await store.accounts.accounts_with_channel_value("whatsapp", "phone_number_id", route.partition(":")[2])
    if any(owner != account_id or here != FIRST_INBOX for owner in owners):
        return True
    inbox = await store.inboxes.inbox_by_route(route)
    return inbox is not None and inbox.id != here


async def domain_of_another(store: Repositories, account_id: str, route: str | None) -> str | None:
    """The mail domain of ``route`` (a mailbox's) when it is another account's, else ``None``: the
    SMTP listener routes by address, so a domain's mail is one account's, and no other account can
    take an address there to read its mail. A domain is an account's once it has verified it
    (services/mail_domains.py) or has a mailbox there read over IMAP (its login proves it); an
    unverified claim holds nothing, so no account can keep a domain from its owner."""
    if not route or not route.startswith("email:"):
        return None
    domain = route.rpartition("@")[2]
    owner = await store.mail_domains.verified_owner(domain)
    if owner not in (None, account_id):
        return domain
    return domain if await store.inboxes.mail_domain_accounts(domain, read_over_imap=True) - {account_id} else None
