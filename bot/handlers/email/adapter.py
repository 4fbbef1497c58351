"""The e-mail channel: mailboxes read over IMAP and/or an SMTP listener in, SMTP out.

The install's own mailbox (``[email]``) and every account's mailbox inboxes (``mailboxes.py``): a
mail is recorded in the account and inbox of the mailbox it came to, and a reply leaves from its
thread's mailbox. Everything below happens within one mailbox: a thread belongs to one inbox.

Inbound mail is parsed (``parse``), handed to the same sink as every channel,
and its original kept. Threads are found by the mail's headers (``locate_thread``): its own
Message-ID (a redelivery), then ``References`` (newest first), then ``In-Reply-To``, then a token
of ours in a plus-address or the subject (from the same contact only, since tokens are visible);
otherwise the mail opens a new thread, so a new subject from the same sender is a new
conversation. Our replies' Message-IDs are linked to their thread before they are sent.

A mail is one message per Message-ID *and* sender (``ParsedMail.dedup_key``); one recorded before
that key, under its bare Message-ID, is still recognised when it is delivered again. A bounce is
recorded in the thread of the reply it returns, and that reply marked failed; a resolved thread
stays resolved (the bounce opens no conversation with the mailer daemon, nor reopens one). The bot
and system notices never go to an address that reads no mail (``loops.is_no_reply``); an agent may
still write to a no-reply address (a person decided it is worth it), but not to a mailer daemon or
to the stand-in address of a bounce that named no sender.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from email.message import EmailMessage
from typing import Any

from bot.handlers.email.compose import (
    compose_reply,
    our_message_id,
    plus_address,
    reply_subject,
    thread_token,
    tokens_in,
)
from bot.handlers.email.imap import MailboxReader
from bot.handlers.email.loops import is_no_reply, reads_no_mail
from bot.handlers.email.mailboxes import Mailbox, Mailboxes
from bot.handlers.email.parse import ParsedMail, attachment_payload, parse_mail, to_inbound
from bot.handlers.email.settings import EmailSettings
from bot.handlers.email.smtp import SmtpListener, send_mail
from bot.handlers.kit.media import AttachmentUnavailable
from bot.handlers.kit.protocol import BaseAdapter, Capabilities, ChannelContext, MalformedPayload, PermanentSendError
from bot.logs import log_event
from bot.tasks import stop_tasks
from conversations.ids import derived_id
from conversations.models import utcnow
from conversations.repositories import Repositories
from conversations.thread_models import SenderKind, Thread
from conversations.traffic import DeliveryStatus, Inbound, Outbound, StatusUpdate

log = logging.getLogger("omnirouter.handlers.email")

AUTOMATIC_SENDERS = frozenset({str(SenderKind.BOT), str(SenderKind.SYSTEM)})


class EmailAdapter(BaseAdapter):
    name = "email"

    def __init__(self, context: ChannelContext) -> None:
        self.settings = context.settings.section(EmailSettings)
        self.mailboxes = Mailboxes(context)
        # a file of 18 MB is about 25 MB in a mail (base64), the limit of common mail services
        self.capabilities = Capabilities(media=False, files=True, max_file_bytes=18_000_000)
        self._store: Repositories | None = None
        own = self.mailboxes.install
        self.reader = MailboxReader(self.settings, self.ingest) if own and self.settings.imap_host else None
        self.listener = (
            SmtpListener(self.settings, self.mailboxes.for_recipient, self.ingest, context.metrics)
            if self.settings.listen_port
            else None
        )
        self._reading: list[asyncio.Task[None]] = []

    @property
    def store(self) -> Repositories:
        assert self._store is not None, "start() first"
        return self._store

    async def start(self, store: Repositories) -> None:
        self._store = store
        self.mailboxes.attach(store)
        if self.mailboxes.install is not None and self.reader is None and self.listener is None:
            log_event(
                log,
                "email.send_only",
                logging.WARNING,
                address=self.settings.address,
                hint="set email.imap_host or email.listen_port to receive mail",
            )

    async def start_receiving(self) -> None:
        """Start reading the mailbox and listening for SMTP, now that mail can be recorded."""
        if self.reader is not None:
            self._reading.append(asyncio.create_task(self.reader.run(), name="email-imap"))
        self._reading.append(asyncio.create_task(self.mailboxes.run_readers(self.ingest), name="email-inboxes"))
        if self.listener is not None:
            await self.listener.start()

    async def shutdown(self) -> None:
        if self._reading:
            await stop_tasks(self._reading)
            self._reading = []
            await self.mailboxes.stop_readers()
        if self.listener is not None:
            try:
                await asyncio.wait_for(self.listener.stop(), 10)
            except TimeoutError:
                log_event(log, "smtp.stop_timeout", logging.WARNING)

    async def close(self) -> None:
        await self.shutdown()

    # --- inbound --------------------------------------------------------------------------

    async def ingest(self, raw: bytes, envelope_recipients: Sequence[str] = (), mailbox: Mailbox | None = None) -> str:
        """Parse and record one mail to ``mailbox`` (``None``: the install's own) and keep its
        original; returns the stored message id. ``MalformedPayload`` for a mail without a sender,
        ``StoreUnavailable`` on an outage."""
        mailbox = mailbox or self.mailboxes.install
        if mailbox is None:
            raise MalformedPayload("this install has no mailbox of its own (email.address)")
        loop = asyncio.get_running_loop()
        mail = await loop.run_in_executor(None, parse_mail, raw, tuple(envelope_recipients))
        inbound = self.inbound(mail, mailbox)
        account_id = mailbox.account_id
        if (
            mailbox.inbox_id is None
            and await self.store.mail.legacy_mail_sender(account_id, mail.legacy_key) == mail.sender
        ):
            inbound = dataclasses.replace(inbound, external_id=mail.legacy_key)  # recorded under the old key
        recorded, _ = await self.sink.receive(inbound)
        await self.store.mail.keep_email_source(account_id, recorded.message.id, raw)
        for bounced in mail.bounced:  # our replies it returns (other ids change nothing)
            await self.sink.apply_status(
                StatusUpdate(account_id, "email", bounced, DeliveryStatus.FAILED, utcnow(), error=mail.bounce_error)
            )
        log_event(
            log,
            "email.received",
            message=recorded.message.id,
            thread=recorded.thread.id,
            inbox=mailbox.inbox_id,
            duplicate=recorded.duplicate,
            attachments=len(mail.attachments),
            size=len(raw),
        )
        return recorded.message.id

    def inbound(self, mail: ParsedMail, mailbox: Mailbox | None = None) -> Inbound:
        """The mail as an ``Inbound`` of ``mailbox`` (``None``: the install's own): an inbox's
        message ids are its own (the same mail to two inboxes is two messages, in two threads)."""
        mailbox = mailbox or self.mailboxes.install
        assert mailbox is not None, "a mail comes to a mailbox"
        inbound = to_inbound(mail, mailbox.account_id)
        address = mailbox.settings.address
        meta: dict[str, Any] = {**inbound.meta, "email": {**inbound.meta["email"], "mailbox": address}}
        if _same_mailbox(mail.sender, address):  # our own mail coming back: a loop
            meta["no_auto_reply"] = "own_address"
        inbound = dataclasses.replace(inbound, meta=meta)
        if mailbox.inbox_id is not None:
            scoped = f"{mailbox.inbox_id}/{inbound.external_id}"
            inbound = dataclasses.replace(inbound, inbox_id=mailbox.inbox_id, external_id=scoped)
        return inbound

    async def locate_thread(self, inbound: Inbound, contact_id: str, now: datetime) -> Thread:
        """The thread this mail continues (see the module doc), or a new one."""
        store, mail = self.store, _mail_meta(inbound)
        earlier = await store.messages.find_inbound(inbound)
        redelivered = await store.threads.get_thread(earlier.thread_id) if earlier else None
        if redelivered is not None:  # the same mail again: its thread, whatever became of it
            return redelivered
        own = f"mid:{mail['message_id']}"
        bounced = [f"mid:{ref}" for ref in mail.get("bounced") or []]
        keys = [own, *bounced]
        keys += [f"mid:{ref}" for ref in reversed(mail.get("references") or [])]
        if mail.get("in_reply_to"):
            keys.append(f"mid:{mail['in_reply_to']}")
        ours = str(mail.get("mailbox") or self.settings.address)
        keys += [f"token:{t}" for t in tokens_in(mail.get("subject", ""), mail.get("recipients") or [], ours)]
        inbox_id = inbound.inbox_id
        found = await store.mail.threads_by_email_keys(inbound.account_id, keys, inbox_id)
        thread = None
        for key in dict.fromkeys(keys):
            if key not in found or ((key.startswith("token:") or key == own) and found[key][1] != contact_id):
                continue  # a token is visible to anyone; another sender's mail can share a Message-ID
            thread = await store.threads.touch_thread_if_open(found[key][0], now)
            if thread is None and key in bounced:  # a bounce belongs to its conversation, even resolved
                thread = await store.threads.get_thread(found[key][0])
            if thread is not None:
                break
        if thread is None:
            opened_by = own if inbox_id is None else f"{inbox_id}|{own}"
            open_key = f"{contact_id}:email:{derived_id('thr', opened_by)}"
            thread = await store.threads.open_keyed_thread(
                inbound.account_id, contact_id, inbound.sender, open_key, now, inbox_id
            )
        token = thread_token(thread.id)
        await store.mail.link_email_keys(
            inbound.account_id, thread.id, contact_id, [own, f"token:{token}"], now, inbox_id
        )
        newest = None if inbound.meta.get("no_auto_reply") == "bounce" else mail["message_id"]  # not answered to
        await store.mail.note_email_message(inbound.account_id, thread.id, mail.get("subject", ""), token, newest)
        return thread

    # --- outbound -------------------------------------------------------------------------

    async def send(self, outbound: Outbound) -> str:
        """Send one reply in its thread; returns its Message-ID (linked to the thread first)."""
        store = self.store
        mailbox = await self.mailboxes.for_send(outbound.account_id, outbound.inbox_id)
        address = mailbox.settings.address
        automatic = str(outbound.meta.get("sender_kind", "bot")) in AUTOMATIC_SENDERS
        if reads_no_mail(outbound.to.address) or (automatic and is_no_reply(outbound.to.address)):
            raise PermanentSendError("this address reads no mail (a no-reply or mailer-daemon address)")
        info = await store.mail.email_thread_info(outbound.thread_id)
        token = info.token if info and info.token else thread_token(outbound.thread_id)
        message_id = our_message_id(outbound.message_id, address)
        thread = await store.threads.get_thread(outbound.thread_id)
        contact_id = thread.contact_id if thread else ""
        keys = [f"mid:{message_id}", f"token:{token}"]
        await store.mail.link_email_keys(
            outbound.account_id, outbound.thread_id, contact_id, keys, utcnow(), outbound.inbox_id
        )
        references = list(info.references) if info else []
        mail = compose_reply(
            text=self.render_text(outbound),
            to=outbound.to.address,
            from_address=address,
            from_name=mailbox.from_name,
            subject=_subject(info.subject if info else "", outbound, token),
            message_id=message_id,
            in_reply_to=references[-1] if references else None,
            references=references,
            reply_to=plus_address(address, token) if mailbox.settings.plus_addressing else None,
            automatic=automatic,
        )
        unsubscribe = outbound.meta.get("list_unsubscribe")
        if isinstance(unsubscribe, str) and unsubscribe:  # a campaign's mail: one-click unsubscribe (RFC 8058)
            mail["List-Unsubscribe"] = f"<{unsubscribe}>"
            mail["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        await self._attach(mail, outbound)
        await send_mail(mailbox.settings, mail, mailbox.guard)
        subject = info.subject if info and info.subject else str(outbound.meta.get("subject", ""))
        await store.mail.note_email_message(outbound.account_id, outbound.thread_id, subject, token, message_id)
        log_event(log, "email.sent", message=outbound.message_id, thread=outbound.thread_id)
        return message_id

    async def stored_attachment(self, message_id: str, index: int) -> bytes:
        """The bytes of a customer's attachment, from the original of their mail kept in the store."""
        raw = await self.store.mail.email_source(message_id)
        data = attachment_payload(raw, index) if raw is not None else None
        if data is None:
            raise AttachmentUnavailable("the original of this mail is no longer kept")
        return data

    async def _attach(self, mail: EmailMessage, outbound: Outbound) -> None:
        """The agent's file from the store, as the mail's attachment."""
        document = outbound.meta.get("document")
        if not isinstance(document, Mapping) or not isinstance(document.get("file"), str):
            return
        found = await self.store.files.read_upload(outbound.account_id, document["file"])
        if found is None:
            raise PermanentSendError("the file is no longer in the store (erased?)")
        kept, data = found
        maintype, _, subtype = kept.content_type.partition("/")
        if not maintype or not subtype or maintype == "multipart":
            maintype, subtype = "application", "octet-stream"
        mail.add_attachment(data, maintype=maintype, subtype=subtype, filename=kept.name)


def _subject(thread_subject: str, outbound: Outbound, token: str) -> str:
    """A reply's subject; a mail we write first (a campaign's) has its own subject, and the
    thread's token so that the answer finds its thread."""
    own = outbound.meta.get("subject")
    if not thread_subject and isinstance(own, str) and own.strip():
        return f"{own.strip()} [#{token}]"
    return reply_subject(thread_subject, token)


def _mail_meta(inbound: Inbound) -> dict[str, Any]:
    mail = inbound.meta.get("email")
    if not isinstance(mail, dict) or not mail.get("message_id"):
        raise ValueError("an e-mail Inbound carries meta['email'] with its message_id")
    return mail


def _same_mailbox(sender: str, ours: str) -> bool:
    local, _, domain = sender.lower().partition("@")
    our_local, _, our_domain = ours.lower().partition("@")
    return domain == our_domain and local.partition("+")[0] == our_local
