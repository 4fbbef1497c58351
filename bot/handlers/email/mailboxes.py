"""The mailboxes the e-mail channel serves: the install's own (``[email]``) and every account's
mailbox inboxes (``conversations/inboxes.py``, channel ``email``, route ``email:<address>``, unique
across the install).

An inbound mail is an inbox's by where it came from: the mailbox a reader read it from, or, on the
SMTP listener, the recipient address (a plus-address ``sales+<token>@…`` is ``sales@…``'s). A
recipient that is an inbox's address is that inbox's once its account has verified the address's
domain (``bot/services/mail_domains.py``; the install's own account needs no proof of the install's
own domain); one in the install's own domain is the
install's mailbox (as before there were inboxes); any other is no one's, and the listener refuses
it. A reply goes out from its thread's inbox, through that inbox's SMTP server.

Each enabled inbox with an IMAP server has a reader of its own: :meth:`Mailboxes.run_readers` lists
the inboxes every ``REFRESH_SECONDS`` and starts, stops or restarts readers as inboxes are added,
disabled or changed (or their account disabled). An inbox's servers are reached only through the
``email`` egress guard: an account cannot point the router at its own network.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bot.handlers.email.imap import MailboxReader
from bot.handlers.email.settings import EmailSettings
from bot.handlers.kit.accounts import REFRESH_SECONDS, PerAccount
from bot.handlers.kit.egress import Egress
from bot.handlers.kit.protocol import ChannelContext, PermanentSendError
from bot.logs import log_event
from bot.tasks import pause, stop_tasks

if TYPE_CHECKING:
    from conversations.repositories import Repositories

log = logging.getLogger("omnirouter.handlers.email")

# what an inbox's settings may set; the rest (poll interval, IDLE, size limit) is the install's
_INBOX_KEYS = (
    "address",
    "display_name",
    "imap_host",
    "imap_port",
    "imap_security",
    "imap_user",
    "imap_password",
    "imap_mailbox",
    "smtp_host",
    "smtp_port",
    "smtp_security",
    "smtp_user",
    "smtp_password",
)
_NUMBERS = ("imap_port", "smtp_port")


@dataclass(frozen=True)
class Mailbox:
    """One mailbox: whose (the account, and its inbox; ``None``: the install's own), its settings,
    the name in From: of its replies, and the egress guard its servers must pass (``None``: the
    operator's own servers, in the settings file)."""

    account_id: str
    inbox_id: str | None
    settings: EmailSettings
    from_name: str
    guard: Egress | None = None


def mailbox_route(address: str) -> str:
    """The route of a mailbox inbox: its address, lower-cased."""
    return f"email:{address.strip().lower()}"


def base_address(recipient: str) -> str:
    """A recipient without its plus-tag, lower-cased: ``Sales+ab12cd34@Shop.example`` -> ``sales@shop.example``."""
    local, _, domain = recipient.strip().lower().rpartition("@")
    return f"{local.partition('+')[0]}@{domain}"


def inbox_settings(install: EmailSettings, config: Mapping[str, Any]) -> EmailSettings:
    """An inbox's mailbox settings: its own where it sets them, the install's knobs (poll interval,
    IDLE, size limit) otherwise, and no listener of its own."""
    values: dict[str, Any] = {key: config[key] for key in _INBOX_KEYS if config.get(key) not in (None, "")}
    for key in _NUMBERS:
        if key in values:
            values[key] = int(values[key])
    defaults = EmailSettings()
    own = {key: getattr(defaults, key) for key in _INBOX_KEYS}
    return dataclasses.replace(install, **{**own, **values, "plus_addressing": True, "listen_port": 0})


Ingest = Callable[[bytes, Sequence[str], Mailbox], Awaitable[object]]


class Mailboxes:
    """The install's mailbox and the inboxes' (read from the store and refreshed as
    :class:`PerAccount` does), found by recipient or by the inbox a reply is for."""

    def __init__(self, context: ChannelContext) -> None:
        own = context.settings.section(EmailSettings)
        self._defaults = own
        self._guard = context.egress.email
        self.install_account = context.account_id
        self.install = (
            Mailbox(context.account_id, None, own, own.display_name or context.settings.account.name)
            if own.address
            else None
        )
        self._domain = own.address.rpartition("@")[2].lower()
        self._inboxes: PerAccount[Mailbox] = PerAccount("email", context.account_id, None, self._build)
        self._store: Repositories | None = None
        self.readers: dict[str, tuple[str, MailboxReader, asyncio.Task[None]]] = {}  # inbox -> (fingerprint, …)

    def _build(self, account_id: str, config: Mapping[str, Any]) -> Mailbox:
        settings = inbox_settings(self._defaults, config)
        return Mailbox(account_id, None, settings, settings.display_name, self._guard)

    def attach(self, store: Repositories) -> None:
        self._store = store
        self._inboxes.attach(store)

    @property
    def store(self) -> Repositories:
        assert self._store is not None, "attach() first"
        return self._store

    async def of_inbox(self, account_id: str, inbox_id: str) -> Mailbox | None:
        """The account's mailbox inbox ``inbox_id`` (``None``: not the account's, disabled, unusable)."""
        found = await self._inboxes.quietly(account_id, inbox_id)
        return dataclasses.replace(found, inbox_id=inbox_id) if found is not None else None

    async def for_recipient(self, recipient: str) -> Mailbox | None:
        """Whose mail to ``recipient`` is (see the module's docstring); ``None``: no one's."""
        address = base_address(recipient)
        inbox = await self.store.inboxes.inbox_by_route(mailbox_route(address))
        if inbox is not None and inbox.channel == "email":  # disabled: read now, not up to 10 s ago
            if inbox.disabled or not await self._proven(inbox.account_id, address.rpartition("@")[2]):
                return None
            return await self.of_inbox(inbox.account_id, inbox.id)
        if self.install is not None and address.rpartition("@")[2] == self._domain:
            return self.install
        return None

    async def _proven(self, account_id: str, domain: str) -> bool:
        """Whether the account has proven ``domain`` its own (the install's own domain is the
        install's account's without proof): the listener takes mail only for such mailboxes."""
        if self.install is not None and account_id == self.install_account and domain == self._domain:
            return True
        return await self.store.mail_domains.is_verified(account_id, domain)

    async def for_send(self, account_id: str, inbox_id: str | None) -> Mailbox:
        """The mailbox a reply goes out from; a ``PermanentSendError`` when the account has none."""
        if inbox_id is None:
            if self.install is not None and account_id == self.install_account:
                return self.install
            raise PermanentSendError(f"no e-mail set-up for account {account_id} (add a mailbox inbox)")
        return dataclasses.replace(await self._inboxes.for_send(account_id, inbox_id), inbox_id=inbox_id)

    # --- the inboxes' readers --------------------------------------------------------------

    async def run_readers(self, ingest: Ingest) -> None:
        """Keep one reader per enabled inbox with an IMAP server, until cancelled."""
        try:
            while True:
                try:
                    await self.refresh_readers(ingest)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # a store outage: the readers running go on
                    log_event(log, "email.inboxes_unread", logging.WARNING, error=f"{type(exc).__name__}: {exc}"[:200])
                await pause(REFRESH_SECONDS)
        finally:
            await self.stop_readers()

    async def refresh_readers(self, ingest: Ingest) -> None:
        """Start the readers of new inboxes, stop those of inboxes gone, disabled or changed."""
        wanted: dict[str, tuple[str, Mailbox]] = {}
        for inbox in await self.store.inboxes.inboxes_of_channel("email"):
            if not inbox.config.get("imap_host"):
                continue
            account = await self.store.accounts.get_account(inbox.account_id)
            if account is None or account.disabled:
                continue
            if inbox.sealing_problems:
                log_event(
                    log,
                    "channel.account_misconfigured",
                    logging.ERROR,
                    channel="email",
                    account=inbox.account_id,
                    inbox=inbox.id,
                    error="; ".join(sorted(inbox.sealing_problems.values()))[:200],
                )
                continue
            mailbox = dataclasses.replace(self._build(inbox.account_id, inbox.config), inbox_id=inbox.id)
            wanted[inbox.id] = (json.dumps(inbox.config, sort_keys=True, default=str), mailbox)
        for inbox_id, (fingerprint, _, task) in list(self.readers.items()):
            if wanted.get(inbox_id, ("",))[0] != fingerprint or task.done():
                del self.readers[inbox_id]
                await stop_tasks([task])
                log_event(log, "email.reader_stopped", inbox=inbox_id)
        for inbox_id, (fingerprint, mailbox) in wanted.items():
            if inbox_id in self.readers:
                continue
            reader = MailboxReader(mailbox.settings, _bound(ingest, mailbox), mailbox.guard)
            task = asyncio.create_task(reader.run(), name=f"email-imap-{inbox_id}")
            self.readers[inbox_id] = (fingerprint, reader, task)
            log_event(log, "email.reader_started", account=mailbox.account_id, inbox=inbox_id)

    async def stop_readers(self) -> None:
        tasks = [task for _, _, task in self.readers.values()]
        self.readers.clear()
        await stop_tasks(tasks)


def _bound(ingest: Ingest, mailbox: Mailbox) -> Callable[[bytes, Sequence[str]], Awaitable[object]]:
    async def ingest_here(raw: bytes, recipients: Sequence[str]) -> object:
        return await ingest(raw, recipients, mailbox)

    return ingest_here
