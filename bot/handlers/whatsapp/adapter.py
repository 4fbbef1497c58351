"""The WhatsApp Cloud API channel, sending through pywa's async client (``pywa_async``), a plain
text message without it (``graph``), with the Graph API base configurable, so tests point it at a
local fake.

Webhook: ``GET /webhooks/whatsapp`` answers Meta's verification challenge (``hub.verify_token``,
constant-time); ``POST /webhooks/whatsapp`` checks ``X-Hub-Signature-256`` — HMAC-SHA256 of the
raw body with the app secret, constant-time (missing: 401, wrong: 403, nothing stored) — then
reads every entry of the payload (``payload``). ``/webhooks/whatsapp/{account_id}``
serves an account whose store document has ``channels.whatsapp`` (its ``api_base``, if any, one of
the hosts the operator allows, or nothing is sent). Every Graph API call and media download goes
through the WhatsApp channel's egress guard; a media URL the Graph API names is fetched over HTTPS
only (with the access token), unless that guard allows its host by name.

Opt-outs (``consent``): a customer's STOP or START is marked for the router, which records it; a
send Meta refuses because the customer stopped marketing messages (131050) records the opt-out.

The 24-hour customer-service window: every customer message extends it on the thread
(``wa_window_ends_at``). Free-form messages outside it are refused before they reach Meta, with
an error that names the configured templates; a template message may always be sent.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import aiohttp
import httpx
from aiohttp import web
from pywa.types.callback import Button, Section, SectionList, SectionRow
from pywa_async.client import WhatsApp
from pywa_async.errors import WhatsAppError
from pywa_async.types.templates import BodyText, TemplateLanguage

from bot.handlers.kit.accounts import PerAccount
from bot.handlers.kit.egress import refusal, url_rule
from bot.handlers.kit.inboxes import file_of
from bot.handlers.kit.media import AttachmentUnavailable, read_capped, served_type
from bot.handlers.kit.payload import Payload
from bot.handlers.kit.protocol import (
    BaseAdapter,
    Capabilities,
    ChannelContext,
    PermanentSendError,
    RetryableSendError,
    SendError,
    VerificationError,
    window_closed_message,
)
from bot.handlers.kit.signatures import same_secret
from bot.handlers.kit.webhook import receive_webhook
from bot.handlers.whatsapp.consent import STOPPED_MARKETING, mark_keywords
from bot.handlers.whatsapp.graph import GraphClient, make_client
from bot.handlers.whatsapp.hook import NumberHook
from bot.handlers.whatsapp.payload import parse_payload
from bot.handlers.whatsapp.settings import WhatsappSettings
from bot.setting_fields import SettingsError
from conversations.models import epoch_ms, utcnow
from conversations.traffic import Outbound, ProviderEvent

if TYPE_CHECKING:
    from conversations.repositories import Repositories

log = logging.getLogger("omnirouter.handlers.whatsapp")

_RATE_LIMITED = {4, 80007, 130429, 131048, 131056}  # app, account, throughput, spam, pair limits
_TRANSIENT = {1, 2, 131000, 131016}
_OUTSIDE_WINDOW = 131047
_REQUIRED = ("phone_number_id", "access_token", "app_secret", "verify_token")


@dataclass
class WhatsappNumber:
    """One account's WhatsApp number: its Graph API client and what checks its webhooks."""

    account_id: str
    phone_number_id: str
    app_secret: str
    verify_token: str
    graph: GraphClient
    templates: Mapping[str, Any] = field(default_factory=dict)
    refused: str = ""  # why nothing may be sent with this number (an api_base the operator does not allow)


IMAGE_LIMIT = 5_000_000  # the largest image WhatsApp takes; a larger one is sent as a document


class WhatsappAdapter(BaseAdapter):
    name = "whatsapp"
    capabilities = Capabilities(
        buttons=True,
        media=True,
        files=True,
        templates=True,
        service_window_hours=24,
        max_text_length=4096,
        max_file_bytes=100_000_000,  # a document; an image over IMAGE_LIMIT goes as one
    )

    def __init__(self, context: ChannelContext) -> None:
        self.settings = context.settings.section(WhatsappSettings)
        self.account_id = context.account_id
        self._egress = context.egress.whatsapp
        self._store: Repositories | None = None  # set by start(): read only for a reply past its queued window
        s = self.settings
        default = (
            {
                "phone_number_id": s.phone_number_id,
                "access_token": s.access_token,
                "app_secret": s.app_secret,
                "verify_token": s.verify_token,
                "templates": s.templates or {},
            }
            if s.phone_number_id
            else None
        )
        self.numbers: PerAccount[WhatsappNumber] = PerAccount(self.name, context.account_id, default, self._build)
        self.keyword_replies = {"stop": s.stop_reply, "start": s.start_reply}

    def _build(self, account_id: str, config: Mapping[str, Any]) -> WhatsappNumber:
        missing = [key for key in _REQUIRED if not config.get(key)]
        if missing:
            where = "whatsapp." if account_id == self.account_id else f"account {account_id}: channels.whatsapp."
            raise SettingsError(f"{where}{', '.join(missing)} must be set to use WhatsApp")
        api_base, why = self._egress.account_api_base(account_id, config)
        return WhatsappNumber(
            account_id,
            str(config["phone_number_id"]),
            str(config["app_secret"]),
            str(config["verify_token"]),
            make_client(config, api_base, self.settings.api_version, self._egress),
            dict(config.get("templates") or {}),
            why,
        )

    async def start(self, store: Repositories) -> None:
        self.numbers.attach(store)
        self._store = store

    async def close(self) -> None:
        await self.numbers.close_all(lambda number: number.graph.close())

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/webhooks/whatsapp", self.challenge),
            web.post("/webhooks/whatsapp", self.webhook),
            web.get("/webhooks/whatsapp/{account_id}", self.challenge),
            web.post("/webhooks/whatsapp/{account_id}", self.webhook),
            web.get("/webhooks/whatsapp/{account_id}/{inbox_id}", self.challenge),  # an extra inbox's number
            web.post("/webhooks/whatsapp/{account_id}/{inbox_id}", self.webhook),
        ]

    async def templates(self, account_id: str, inbox_id: str | None = None) -> Mapping[str, Any]:
        """The message templates configured for the account's number (or its inbox's)."""
        number = await self.numbers.quietly(account_id, inbox_id)
        return number.templates if number else {}

    # --- inbound -------------------------------------------------------------------------

    async def _number(self, request: web.Request) -> WhatsappNumber:
        account_id = request.match_info.get("account_id", self.account_id)
        return await self.numbers.for_webhook(account_id, request.match_info.get("inbox_id"))

    async def challenge(self, request: web.Request) -> web.Response:
        """Meta's subscription check: echo ``hub.challenge`` when ``hub.verify_token`` matches."""
        number = await self._number(request)
        token = request.query.get("hub.verify_token", "")
        if request.query.get("hub.mode") != "subscribe" or not token or not same_secret(token, number.verify_token):
            raise VerificationError.forbidden("hub.mode must be subscribe and hub.verify_token must match")
        return web.Response(text=request.query.get("hub.challenge", ""), content_type="text/plain")

    async def webhook(self, request: web.Request) -> web.Response:
        number = await self._number(request)
        inbox_id = request.match_info.get("inbox_id")
        hook = NumberHook(
            number.account_id,
            number.phone_number_id,
            number.app_secret,
            inbox_id,
            self.keyword_replies,
            self._neighbours,
        )
        return await receive_webhook(request, hook, self.sink)

    async def _neighbours(self, account_id: str, numbers: set[str], app_secret: str) -> dict[str, str]:
        """Which of ``numbers`` are extra inboxes of the account under the same app (secret)."""
        found: dict[str, str] = {}
        if self._store is None:
            return found
        for number in numbers:
            inbox = await self._store.inboxes.inbox_by_route(f"whatsapp:{number}")
            same_app = inbox is not None and same_secret(str(inbox.config.get("app_secret", "")), app_secret)
            if inbox is not None and same_app and inbox.account_id == account_id and not inbox.disabled:
                found[number] = inbox.id
        return found

    def parse(self, body: bytes, headers: Mapping[str, str]) -> list[ProviderEvent]:
        events = parse_payload(Payload.parse(body), self.account_id, self.settings.phone_number_id or None)
        return mark_keywords(events, self.keyword_replies)

    # --- outbound ------------------------------------------------------------------------

    async def send(self, outbound: Outbound) -> str:
        number = await self.numbers.for_send(outbound.account_id, outbound.inbox_id)
        if number.refused:
            raise PermanentSendError(number.refused)
        template = outbound.meta.get("template")
        try:
            if isinstance(template, Mapping):
                sent = await number.graph.pywa.send_template(
                    outbound.to.address,
                    name=str(template["name"]),
                    language=TemplateLanguage(template["language"]),
                    params=[BodyText.params(*template["parameters"])] if template.get("parameters") else None,
                )
                return str(sent.id)
            await self._check_window(outbound, number)
            return await self._send_free_form(number.graph, outbound)
        except WhatsAppError as exc:
            if exc.code == STOPPED_MARKETING and self._store is not None:  # the customer said so in WhatsApp
                await self._store.phone.set_consent(
                    outbound.account_id, self.name, outbound.to.address, "stop", epoch_ms(utcnow()), outbound.message_id
                )
            raise _send_error(exc) from None
        except (httpx.HTTPError, aiohttp.ClientError, TimeoutError) as exc:  # pywa's, the plain text send's
            if refused := refusal(exc):
                raise PermanentSendError(f"whatsapp: {refused}; nothing sent") from None
            raise RetryableSendError(f"whatsapp {type(exc).__name__}: {exc}"[:300]) from None

    async def _check_window(self, outbound: Outbound, number: WhatsappNumber) -> None:
        """The window as it was when the reply was queued, so a send reads nothing; only past that
        end is the thread read, for a customer who wrote again meanwhile (a retried reply)."""
        ends, now = outbound.window_ends_at, utcnow()
        if self.capabilities.window_open(ends, now):
            return
        thread = await self._store.threads.get_thread(outbound.thread_id) if self._store else None
        ends = thread.wa_window_ends_at if thread else ends
        if not self.capabilities.window_open(ends, now):
            raise PermanentSendError(window_closed_message(ends.isoformat() if ends else None, number.templates))

    async def _send_file(self, client: WhatsApp, outbound: Outbound, key: str) -> str:
        """An agent's file from the store, uploaded to WhatsApp's media and sent: an image as an
        image (up to WhatsApp's 5 MB for images), anything else as a document, the reply's text as
        its caption."""
        found = await self._store.files.read_upload(outbound.account_id, key) if self._store is not None else None
        if found is None:
            raise PermanentSendError("the file is no longer in the store (erased?)")
        kept, data = found
        caption = outbound.text[:1024] or None
        if served_type(kept.content_type, data)[1] and len(data) <= IMAGE_LIMIT:
            sent = await client.send_image(
                outbound.to.address, image=data, caption=caption, mime_type=kept.content_type
            )
        else:
            sent = await client.send_document(
                outbound.to.address, document=data, filename=kept.name, caption=caption, mime_type=kept.content_type
            )
        return str(sent.id)

    async def _send_free_form(self, graph: GraphClient, outbound: Outbound) -> str:
        client, to, text, options = graph.pywa, outbound.to.address, outbound.text, outbound.options
        document = outbound.meta.get("document")
        if isinstance(document, Mapping) and isinstance(document.get("file"), str):
            return await self._send_file(client, outbound, document["file"])
        if isinstance(document, Mapping):
            source = _document_source(document)
            return str(
                (
                    await client.send_document(to, document=source, filename=document.get("name"), caption=text or None)
                ).id
            )
        if options and len(text) <= 1024 and len(options) <= 3 and all(len(o) <= 20 for o in options):
            buttons = [Button(title=o, callback_data=o[:256]) for o in options]
            return str((await client.send_message(to, text, buttons=buttons)).id)
        if options and len(text) <= 1024 and len(options) <= 10 and all(len(o) <= 24 for o in options):
            rows = [SectionRow(title=o, callback_data=o[:200]) for o in options]
            listed = SectionList(button_title="Choose", sections=[Section(title="Options", rows=rows)])
            return str((await client.send_message(to, text, buttons=listed)).id)
        # options that do not fit WhatsApp's buttons become a numbered list
        lines = [f"{n}. {o}" for n, o in enumerate(options, start=1)]
        body = "\n".join([text, "", *lines]) if lines else text
        return await graph.send_text(to, body[:4096])

    # --- attachments ---------------------------------------------------------------------

    async def fetch_attachment(self, account_id: str, ref: str) -> bytes:
        """The bytes of a media file the customer sent, by media id, at most ``max_download_bytes``."""
        inbox_id, ref = file_of(ref)
        number = await self.numbers.quietly(account_id, inbox_id)
        if number is None:
            raise AttachmentUnavailable(f"no WhatsApp number is configured for account {account_id}")
        if number.refused:
            raise AttachmentUnavailable(number.refused)
        try:
            media = await number.graph.pywa.get_media_url(ref)
            self._check_media_url(media.url)
            async with number.graph.session.httpx.stream("GET", media.url) as response:
                if response.status_code != 200:
                    raise AttachmentUnavailable(f"WhatsApp answered {response.status_code} for the media file")
                return await read_capped(response.aiter_bytes(), self.settings.max_download_bytes, media.file_size)
        except WhatsAppError as exc:
            raise AttachmentUnavailable(f"whatsapp {exc.code}: {exc.message}") from None
        except httpx.HTTPError as exc:
            raise AttachmentUnavailable(f"whatsapp media: {refusal(exc) or type(exc).__name__}") from None

    def _check_media_url(self, url: str) -> None:
        """HTTPS (the access token goes with the request), or a host the operator allows; where the
        host leads is checked when the download connects."""
        rule = url_rule(url)
        if rule is None:
            raise AttachmentUnavailable("the provider named a media URL that is not an http(s) URL with a host")
        if not url.lower().startswith("https://") and not self._egress.allows_name(rule.host, rule.port):
            raise AttachmentUnavailable(f"the provider named a media URL that is not HTTPS ({rule}); not fetched")


def _document_source(document: Mapping[str, Any]) -> str:
    """What pywa is given for a document sent by address: WhatsApp's numeric media id, or an
    http(s) URL that WhatsApp fetches itself. pywa reads any other string as a path on this host
    (and uploads the file it names) or as base64 data, so nothing else gets that far; nor does
    WhatsApp's own media address, which pywa would download without the egress guard."""
    media_id, url = document.get("media_id"), document.get("url")
    if isinstance(media_id, str) and media_id:
        if not media_id.isascii() or not media_id.isdigit():
            raise PermanentSendError("a document's media_id must be WhatsApp's numeric media id")
        return media_id
    if isinstance(url, str) and url:
        rule = url_rule(url)
        if rule is None or not url.startswith(("https://", "http://")):  # as pywa tells a URL: lower case
            raise PermanentSendError("a document's url must be an http(s) URL with a host")
        if rule.host == "lookaside.fbsbx.com":
            raise PermanentSendError("a document on WhatsApp's own media host is sent by its media_id, not its URL")
        return url
    raise PermanentSendError("a document needs a url or a media_id")


def _send_error(exc: WhatsAppError) -> SendError:
    detail = f"whatsapp {exc.code}: {exc.message}"[:300]
    if exc.code in _RATE_LIMITED or exc.status_code == 429:
        header = exc.raw_response.headers.get("Retry-After") if exc.raw_response is not None else None
        return RetryableSendError(detail, retry_after=_seconds(header))
    if exc.code in _TRANSIENT or exc.is_transient or (exc.status_code or 0) >= 500:
        return RetryableSendError(detail)
    if exc.code == _OUTSIDE_WINDOW:
        return PermanentSendError(f"{detail} (outside the 24-hour window: send a template)")
    if exc.code == STOPPED_MARKETING:
        return PermanentSendError(f"{detail} (the customer stopped marketing messages: opted out of campaigns)")
    return PermanentSendError(detail)


def _seconds(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None
