"""The SMS channel: inbound texts and MMS, delivery reports, opt-out keywords, long replies.

What is SMS rather than provider lives here: the STOP/START/HELP keywords (a stopped number gets
nothing from us until it says START again), splitting long replies into parts of at most
``sms.max_segments`` segments, the webhook route. What a provider does differently is behind
:class:`SmsGateway` — verify a webhook, parse it, send one text — chosen by ``sms.gateway`` from
``SMS_GATEWAYS``. Another SMS provider is one more module with a class like
``bot.handlers.kit.twilio.TwilioGateway`` and one line in that table. Accounts' own Twilio numbers
(SMS inboxes) share the webhook route; ``bot.handlers.kit.twilio_lines`` tells whose number a
webhook is for and which number a reply goes out from.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import importlib
import logging
import secrets
from collections.abc import Mapping
from typing import Any, Protocol

from aiohttp import web

from bot.handlers.kit.files import FileLinks
from bot.handlers.kit.inboxes import file_of, in_inbox
from bot.handlers.kit.media import AttachmentUnavailable
from bot.handlers.kit.protocol import BaseAdapter, Capabilities, ChannelContext, PermanentSendError
from bot.handlers.kit.twilio_lines import TwilioLines
from bot.handlers.kit.webhook import receive_webhook
from bot.handlers.sms.segments import shape, split_for_sms
from bot.handlers.sms.settings import SmsSettings, own_line
from bot.logs import log_event
from conversations.repositories import Repositories
from conversations.traffic import Inbound, Outbound, ProviderEvent, StatusUpdate

log = logging.getLogger("omnirouter.handlers.sms")

# The carrier keywords (matched on the whole message, any case, as carriers and Twilio do).
STOP_WORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "OPTOUT", "REVOKE"})
START_WORDS = frozenset({"START", "UNSTOP", "YES"})
HELP_WORDS = frozenset({"HELP", "INFO"})
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'


class SmsGateway(Protocol):
    """One SMS provider: what :class:`SmsAdapter` needs from it."""

    name: str

    async def verify(self, request: web.Request, body: bytes) -> None:
        """Raise ``VerificationError`` unless the provider signed this webhook."""

    def parse_sms(self, body: bytes) -> Inbound | StatusUpdate:
        """One webhook -> one inbound text (channel ``sms``) or delivery report."""

    async def send_text(self, to: str, text: str, media_url: str | None = None) -> str:
        """Send one text of at most ``sms.max_segments`` segments (an MMS with ``media_url``, a
        public address the provider fetches the file from); returns the provider's id."""

    async def fetch_media(self, ref: str, limit: int) -> bytes:
        """The bytes of a customer's MMS file by the ``provider_ref`` its parse gave, at most
        ``limit``; ``AttachmentUnavailable`` saying why not."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...


# sms.gateway -> "module:Class"; imported only when chosen.
SMS_GATEWAYS: dict[str, str] = {"twilio": "bot.handlers.kit.twilio:TwilioGateway"}


def load_gateway(spec: str, context: ChannelContext) -> Any:
    """Construct the provider class named ``"module:Class"`` (imported only now)."""
    module_name, _, class_name = spec.partition(":")
    return getattr(importlib.import_module(module_name), class_name)(context)


def keyword_of(inbound: Inbound) -> str | None:
    """``stop``, ``start`` or ``help`` when the text is a carrier keyword (or the provider says
    it handled one), else ``None``."""
    reported = str(inbound.meta.get("opt_out_type", "")).upper()
    word = reported or inbound.text.strip().upper()
    if word in STOP_WORDS:
        return "stop"
    if word in START_WORDS:
        return "start"
    if word in HELP_WORDS:
        return "help"
    return None


class SmsAdapter(BaseAdapter):
    name = "sms"

    def __init__(self, context: ChannelContext) -> None:
        self._context = context
        self._settings = context.settings.section(SmsSettings)
        self.gateway: SmsGateway = load_gateway(SMS_GATEWAYS[self._settings.gateway], context)
        # the numbers of accounts' SMS inboxes; the install's own, when it has one
        self.lines = TwilioLines(self.name, context, self.gateway, own_line(context.settings))
        public_url = context.settings.server.public_url
        # MMS: the provider fetches the file, at most 5 MB (Twilio's limit for a message's media)
        self.capabilities = Capabilities(media=False, files=bool(public_url), max_file_bytes=5_000_000)
        self._store: Repositories | None = None
        self._link_key = b""
        self._files = FileLinks("/sms/files/{key}", self._started_store, self._sign, public_url)
        self._replies = {"help": self._settings.help_reply, "start": self._settings.start_reply}

    async def start(self, store: Repositories) -> None:
        self._store = store
        self.lines.attach(store)
        key, _ = await store.secrets.sealed_secret("sms-file-links", lambda: secrets.token_urlsafe(32))
        self._link_key = key.encode()
        if self.lines.install_serves:  # no number of its own: nothing to sign in to Twilio with
            await self.gateway.start()

    def _started_store(self) -> Repositories:
        assert self._store is not None, "start() first"
        return self._store

    def _sign(self, text: str) -> str:
        return hmac.new(self._link_key, text.encode(), hashlib.sha256).hexdigest()[:32]

    async def close(self) -> None:
        await self.gateway.close()
        await self.lines.close()

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/webhooks/sms", self.webhook), web.get(self._files.route, self._files.serve)]

    async def webhook(self, request: web.Request) -> web.Response:
        """The shared webhook flow, for the number the webhook names (the install's, or an SMS
        inbox's: checked with its token, its events the inbox's); Twilio then gets the empty TwiML
        it expects (no reply now: replies go out through the outbox)."""
        gateway, inbox_id, _ = await self.lines.for_webhook(request, await request.read())
        await receive_webhook(request, _NumberHook(self, gateway, inbox_id), self.sink)
        return web.Response(text=EMPTY_TWIML, content_type="text/xml")

    async def verify(self, request: web.Request, body: bytes) -> None:
        await self.gateway.verify(request, body)

    def parse(self, body: bytes, headers: Mapping[str, str]) -> list[ProviderEvent]:
        return self.parse_with(self.gateway, body)

    def parse_with(self, gateway: SmsGateway, body: bytes) -> list[ProviderEvent]:
        item = gateway.parse_sms(body)
        if isinstance(item, Inbound) and (keyword := keyword_of(item)):
            marked = {"kind": keyword, "reply": self._replies.get(keyword, "")}
            item = dataclasses.replace(item, meta={**item.meta, "keyword": marked})
        return [item]

    async def send(self, outbound: Outbound) -> str:
        """Send the reply in as many parts as its length needs; returns the first part's id
        (delivery reports of that part move the message's status)."""
        assert self._store is not None, "start() first"
        if await self._store.phone.opted_out(outbound.account_id, self.name, outbound.to.address):
            raise PermanentSendError("recipient opted out (STOP); they must send START first")
        media_url = self._media_url(outbound)
        parts = split_for_sms(self.render_text(outbound), self._settings.max_segments) or ([""] if media_url else [])
        if not parts:
            raise PermanentSendError("nothing to send: the text is empty")
        gateway = await self.lines.for_send(outbound.account_id, outbound.inbox_id)
        ids = await self._send_parts(gateway, outbound, parts, media_url)
        log_event(
            log,
            "sms.sent",
            message=outbound.message_id,
            parts=len(parts),
            segments=sum(shape(part).segments for part in parts),
            encoding=shape(parts[0]).encoding,
        )
        return ids[0]

    async def fetch_attachment(self, account_id: str, ref: str) -> bytes:
        """A customer's MMS file (fetched with the credentials of the number it was sent to), at
        most ``sms.max_download_bytes``."""
        inbox_id, path = file_of(ref)
        gateway: SmsGateway | None = await self.lines.for_file(account_id, inbox_id)
        if gateway is None:
            raise AttachmentUnavailable("the SMS inbox the file was sent to is not set up")
        return await gateway.fetch_media(path, self._settings.max_download_bytes)

    def _media_url(self, outbound: Outbound) -> str | None:
        """The public address of the agent's file for this recipient (an MMS), if there is one."""
        document = outbound.meta.get("document")
        if not isinstance(document, Mapping) or not isinstance(document.get("file"), str):
            return None
        if not self.capabilities.files:
            raise PermanentSendError("an MMS needs server.public_url: the provider fetches the file from it")
        return self._files.url_for(outbound.account_id, outbound.to.address)(document["file"])

    async def _send_parts(
        self, gateway: SmsGateway, outbound: Outbound, parts: list[str], media_url: str | None = None
    ) -> list[str]:
        """Send each part once: a retry after part 2 of 3 failed resends only parts 2 and 3. The
        file of an MMS goes with the first part."""
        assert self._store is not None
        if len(parts) == 1:
            return [await gateway.send_text(outbound.to.address, parts[0], media_url)]
        sent = await self._store.phone.sent_sms_parts(outbound.message_id, len(parts))
        ids = []
        for index, part in enumerate(parts):
            if index not in sent:
                sent[index] = await gateway.send_text(outbound.to.address, part, media_url if index == 0 else None)
                await self._store.phone.note_sms_part(outbound.message_id, index, sent[index])
            ids.append(sent[index])
        return ids


class _NumberHook:
    """One webhook of one number, as the shared webhook flow reads it: checked by that number's
    gateway, its events marked as its inbox's."""

    name = "sms"

    def __init__(self, adapter: SmsAdapter, gateway: SmsGateway, inbox_id: str | None) -> None:
        self._adapter, self._gateway, self._inbox_id = adapter, gateway, inbox_id

    async def verify(self, request: web.Request, body: bytes) -> None:
        await self._gateway.verify(request, body)

    def parse(self, body: bytes, headers: Mapping[str, str]) -> list[ProviderEvent]:
        return in_inbox(self._adapter.parse_with(self._gateway, body), self._inbox_id, scope_ids=False)
