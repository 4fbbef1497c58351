"""A mailbox inbox's Check and test message, for the console and the API: which mailbox settings
an account's inbox key names (an extra mailbox inbox's own, or — for the install's own account
only — the install's ``[email]`` mailbox, its first), tried or sent through with
:mod:`bot.handlers.email.probe`."""

from __future__ import annotations

from bot.handlers.email.mailboxes import inbox_settings
from bot.handlers.email.probe import MailboxFound, check_mailbox, send_test_mail
from bot.handlers.email.settings import EmailSettings
from bot.handlers.kit.egress import Egress
from bot.handlers.kit.egress_guards import EgressGuards
from bot.handlers.kit.protocol import PermanentSendError
from bot.settings import Settings
from conversations.tenant_models import Account, Inbox

FIRST_MAILBOX = "email"  # the key of the install's own mailbox among its account's inboxes


def install_mailbox(settings: Settings, account_id: str) -> EmailSettings | None:
    """The install's own mailbox when ``account_id`` is the install's own account and it has one."""
    own = settings.section(EmailSettings)
    return own if account_id == settings.account.id and own.address else None


def mailbox_of(
    settings: Settings, guards: EgressGuards, account: Account, inbox: Inbox | None
) -> tuple[EmailSettings, Egress | None] | None:
    """The mailbox settings of the account's inbox (``None``: its first, the install's own) and
    the egress guard its servers must pass (``None`` for the operator's own, in the settings file);
    ``None`` when the account has no such mailbox."""
    if inbox is None:
        own = install_mailbox(settings, account.id)
        return (own, None) if own is not None else None
    if inbox.account_id != account.id or inbox.channel != "email":
        return None
    return inbox_settings(settings.section(EmailSettings), inbox.config), guards.email


async def check_mailbox_inbox(mailbox: tuple[EmailSettings, Egress | None]) -> MailboxFound:
    """Log in to the mailbox's IMAP server and connect to its SMTP server (``ProbeFailed``: why not)."""
    return await check_mailbox(*mailbox)


async def send_mailbox_test(
    settings: Settings, guards: EgressGuards, account: Account, inbox: Inbox | None, name: str, to: str, text: str
) -> str:
    """Send ``text`` to ``to`` from the mailbox, through its own SMTP server; its Message-ID or a
    ``SendError``."""
    mailbox = mailbox_of(settings, guards, account, inbox)
    if mailbox is None:
        raise PermanentSendError(f"no mailbox {inbox.id if inbox else FIRST_MAILBOX} in account {account.id}")
    own, guard = mailbox
    return await send_test_mail(own, guard, own.display_name or name, to, text)
