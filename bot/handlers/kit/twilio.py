"""Twilio as SMS gateway and call-event source: webhook signatures, form payloads, the REST API.

Webhooks are form-encoded and signed with ``X-Twilio-Signature`` over the URL Twilio called plus
the sorted form fields; the router may sit behind a proxy, so the URL is rebuilt from
``server.public_url`` (checked by ``twilio.request_validator``). Sends go through the ``twilio``
client on its aiohttp-based ``AsyncTwilioHttpClient``; ``twilio.api_base`` points it elsewhere
(tests run a fake Twilio on 127.0.0.1). A customer's MMS file is fetched by the path of its media
resource from ``twilio.api_base`` (never from the host a webhook names), and Twilio's redirect to
where the file lies is followed through the ``twilio`` egress guard.
"""

from __future__ import annotations

import base64
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import parse_qs, parse_qsl, unquote, urlparse

import aiohttp
from aiohttp import web
from multidict import MultiDict
from twilio.base.exceptions import TwilioRestException
from twilio.request_validator import (
    HMAC_SHA1,
    HMAC_SHA256,
    SIGNATURE_HEADER,
    SIGNATURE_SETTINGS_HEADER,
    RequestValidator,
    add_port,
    get_signature_algorithm,
    remove_port,
)
from twilio.rest import Client

from bot.handlers.kit.egress import Egress, refusal
from bot.handlers.kit.media import AttachmentUnavailable, read_capped
from bot.handlers.kit.payload import e164
from bot.handlers.kit.protocol import (
    ChannelContext,
    MalformedPayload,
    PermanentSendError,
    RetryableSendError,
    UnsupportedEvent,
    VerificationError,
)
from bot.handlers.kit.signatures import same_secret
from bot.handlers.kit.twilio_http import TwilioHttpClient, last_retry_after
from bot.handlers.kit.twilio_settings import TwilioSettings
from bot.handlers.sms.settings import SmsSettings
from bot.logs import log_event
from conversations.models import utcnow
from conversations.traffic import Attachment, CallEvent, DeliveryStatus, Direction, Identity, Inbound, StatusUpdate

log = logging.getLogger("omnirouter.handlers.twilio")

_ALGORITHMS = (HMAC_SHA1, HMAC_SHA256)  # what Twilio signs with; anything else is refused
E164 = re.compile(r"^\+[1-9]\d{6,14}$")
# the path of an MMS media resource, as Twilio names it in MediaUrl{n}
MEDIA_PATH = re.compile(r"^/2010-04-01/Accounts/AC[0-9a-f]{32}/Messages/(?:MM|SM)[0-9a-f]{32}/Media/ME[0-9a-f]{32}$")
TWILIO_API = "https://api.twilio.com"

# Twilio message statuses -> ours. Statuses of *inbound* messages are not delivery reports.
MESSAGE_STATUSES = {
    "accepted": DeliveryStatus.QUEUED,
    "scheduled": DeliveryStatus.QUEUED,
    "queued": DeliveryStatus.QUEUED,
    "sending": DeliveryStatus.SENT,
    "sent": DeliveryStatus.SENT,
    "delivered": DeliveryStatus.DELIVERED,
    "read": DeliveryStatus.READ,
    "undelivered": DeliveryStatus.FAILED,
    "failed": DeliveryStatus.FAILED,
    "canceled": DeliveryStatus.FAILED,
}
INBOUND_STATUSES = frozenset({"received", "receiving"})
FINAL_CALL_STATUSES = frozenset({"completed", "busy", "no-answer", "failed", "canceled"})
# error codes after which a send can never succeed as it is
PERMANENT_CODES = {
    21610: "recipient replied STOP (opted out at the carrier)",
    21211: "invalid 'To' number",
    21614: "'To' number cannot receive SMS",
    21408: "region not enabled for this account",
}


def read_form(body: bytes) -> MultiDict[str]:
    """A form-encoded body as a multi-dict; ``MalformedPayload`` if it is not one."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedPayload("body is not UTF-8 form data") from None
    try:
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=bool(text))
    except ValueError:
        raise MalformedPayload("body is not application/x-www-form-urlencoded") from None
    return MultiDict(pairs)


def _required(form: Mapping[str, str], *names: str) -> str:
    for name in names:
        value = form.get(name, "").strip()
        if value:
            return value
    raise MalformedPayload(f"missing {names[0]}")


_DIALLED = re.compile(r"^\+?[\d\s().-]{7,24}$")


def phone_address(value: str) -> str:
    """A number as Twilio names it, made one form before it becomes an identity: percent-encoding a
    relay left in (``%2B9475…``) undone, a dialled number written as E.164; anything else (an
    alphanumeric sender, ``client:alice``) as it came."""
    text = unquote(value).strip() if "%" in value else value.strip()
    return (e164(text) or text) if _DIALLED.match(text) else text


def our_number(body: bytes, call: bool = False) -> str:
    """The number of ours a webhook (a call's with ``call``) is about, as Twilio names it: ``To``
    of a text or call to us, ``From`` of a delivery report or a call we made; ``""`` when the body
    names none."""
    try:
        form = read_form(body)
    except MalformedPayload:
        return ""
    if call:
        ours_sent = form.get("Direction", "inbound") != "inbound"
    else:
        status = (form.get("MessageStatus") or form.get("SmsStatus") or "").strip().lower()
        ours_sent = not (status in INBOUND_STATUSES or (not status and "Body" in form))
    return phone_address(form.get("From" if ours_sent else "To", ""))


def _phone(address: str) -> str | None:
    """The number when it is E.164 (short codes and sender names are not phone numbers)."""
    return address if E164.match(address) else None


@dataclass(frozen=True)
class TwilioLine:
    """The Twilio credentials and number one gateway sends with: the install's (``[twilio]`` and
    ``[sms]``), or an SMS inbox's, whose ``api_base`` an account chose (so its client goes through
    the ``twilio`` egress guard: ``guarded``)."""

    account_sid: str
    auth_token: str
    api_base: str = ""
    from_number: str = ""
    messaging_service_sid: str = ""
    timeout: float = 15.0
    guarded: bool = False

    @classmethod
    def of_install(cls, twilio: TwilioSettings, sms: SmsSettings) -> TwilioLine:
        return cls(
            twilio.account_sid,
            twilio.auth_token,
            twilio.api_base,
            sms.from_number,
            sms.messaging_service_sid,
            twilio.timeout,
        )


class TwilioGateway:
    """Twilio Programmable Messaging and Voice status callbacks for one account's number (the
    install's, or one of an SMS inbox's: ``line`` and ``account_id``)."""

    name = "twilio"

    def __init__(self, context: ChannelContext, line: TwilioLine | None = None, account_id: str = "") -> None:
        settings = context.settings
        self._account_id = account_id or context.account_id
        self._line = line or TwilioLine.of_install(settings.section(TwilioSettings), settings.section(SmsSettings))
        self._public_url = settings.server.public_url.rstrip("/")
        self._validator = RequestValidator(self._line.auth_token)
        self._client: Client | None = None
        self._http: TwilioHttpClient | None = None
        self._egress: Egress = context.egress.twilio
        self._media: aiohttp.ClientSession | None = None

    # --- webhooks -----------------------------------------------------------------------------

    async def verify(self, request: web.Request, body: bytes) -> None:
        """403 unless ``X-Twilio-Signature`` signs the public URL and the form fields."""
        signature = request.headers.get(SIGNATURE_HEADER, "")
        if not signature:
            raise _forbidden("missing X-Twilio-Signature")
        url = f"{self._public_url}{request.path_qs}" if self._public_url else str(request.url)
        try:  # JSON bodies are signed through a bodySHA256 query parameter, forms field by field
            form: MultiDict[str] | str = body.decode("utf-8") if "bodySHA256" in request.query else read_form(body)
        except (UnicodeDecodeError, MalformedPayload):
            raise _forbidden("the body is not what Twilio signs") from None
        algorithm = get_signature_algorithm(request.headers.get(SIGNATURE_SETTINGS_HEADER, ""))
        if not self._signed(url, form, signature, algorithm):
            log_event(log, "twilio.bad_signature", logging.WARNING, path=request.path)
            raise _forbidden("X-Twilio-Signature does not match")

    def _signed(self, url: str, form: MultiDict[str] | str, signature: str, algorithm: str) -> bool:
        """Twilio's own check (``RequestValidator.validate``: the URL with and without its port,
        a JSON body through its ``bodySHA256``), compared with ``hmac.compare_digest`` rather than
        the library's Python loop."""
        if algorithm.upper() not in _ALGORITHMS:
            return False
        params: MultiDict[str] | dict[str, str] = {} if isinstance(form, str) else form
        if isinstance(form, str):
            given_hash = parse_qs(urlparse(url).query).get("bodySHA256", [""])[0]
            if not same_secret(self._validator.compute_hash(form), given_hash):
                return False
        parsed = urlparse(url)
        return any(
            same_secret(self._validator.compute_signature(candidate, params, algorithm), signature)
            for candidate in dict.fromkeys((url, remove_port(parsed), add_port(parsed)))
        )

    def parse_sms(self, body: bytes) -> Inbound | StatusUpdate:
        form = read_form(body)
        sid = _required(form, "MessageSid", "SmsSid")
        status = (form.get("MessageStatus") or form.get("SmsStatus") or "").strip().lower()
        if status in INBOUND_STATUSES or (not status and "Body" in form):
            return self._inbound_sms(form, sid)
        if status not in MESSAGE_STATUSES:
            raise UnsupportedEvent(f"message status {status or '(none)'!r} is not handled")
        error = form.get("ErrorCode") or None
        return StatusUpdate(
            account_id=self._account_id,
            channel="sms",
            external_id=sid,
            status=MESSAGE_STATUSES[status],
            at=utcnow(),
            error=f"{status} ({error})" if error else (status if status in ("undelivered", "canceled") else None),
        )

    def _inbound_sms(self, form: MultiDict[str], sid: str) -> Inbound:
        sender = phone_address(_required(form, "From"))
        media = []
        try:
            count = int(form.get("NumMedia", "0") or 0)
        except ValueError:
            raise MalformedPayload("NumMedia is not a number") from None
        for n in range(min(count, 10)):
            url = form.get(f"MediaUrl{n}")
            if not url:
                raise MalformedPayload(f"NumMedia is {count} but MediaUrl{n} is missing")
            mime = form.get(f"MediaContentType{n}") or None
            path = urlparse(url).path.rstrip("/")
            ref = path if MEDIA_PATH.match(path) else None  # fetched from our api_base by this path
            media.append(Attachment(kind=_media_kind(mime), mime_type=mime, url=url, provider_ref=ref))
        return Inbound(
            account_id=self._account_id,
            channel="sms",
            external_id=sid,
            sender=Identity("sms", sender),
            text=form.get("Body", "").strip(),
            attachments=tuple(media),
            phone=_phone(sender),
            meta={
                "to": form.get("To", ""),
                "segments": form.get("NumSegments", "1"),
                **({"opt_out_type": form["OptOutType"]} if form.get("OptOutType") else {}),
            },
        )

    def parse_call(self, body: bytes) -> CallEvent:
        """One call status callback (or ``<Dial action>`` callback) -> a call event when the call
        is over; ``UnsupportedEvent`` for the progress events before that."""
        form = read_form(body)
        sid = _required(form, "CallSid")
        dial_status = form.get("DialCallStatus", "").strip().lower()
        status = dial_status or _required(form, "CallStatus").lower()
        if status not in FINAL_CALL_STATUSES and status != "answered":
            raise UnsupportedEvent(f"call status {status!r} is progress, not an ended call")
        direction = Direction.IN if form.get("Direction", "inbound") == "inbound" else Direction.OUT
        customer = phone_address(_required(form, "From" if direction == Direction.IN else "To"))
        duration = _seconds(form.get("DialCallDuration") if dial_status else form.get("CallDuration"))
        answered = status == "answered" or (status == "completed" and (duration > 0 or bool(dial_status)))
        return CallEvent(
            account_id=self._account_id,
            channel="voice",
            external_id=sid,
            customer=customer,
            direction=direction,
            status=status,
            answered=answered,
            duration=duration,
            at=_timestamp(form.get("Timestamp")),
            phone=_phone(customer),
        )

    # --- sending ------------------------------------------------------------------------------

    async def start(self) -> None:
        self._started()

    def _started(self) -> Client:
        """The REST client, made on first use (an inbox's gateway is built outside the event loop's
        start-up); an inbox's talks through the egress guard."""
        if self._client is None:
            line = self._line
            self._http = TwilioHttpClient(pool_connections=not line.guarded, timeout=line.timeout)
            if line.guarded:
                self._http.session = self._egress.session(limit=20)
            self._client = Client(line.account_sid, line.auth_token, http_client=self._http)
            if line.api_base:
                self._client.api.base_url = line.api_base.rstrip("/")
        return self._client

    async def close(self) -> None:
        if self._http is not None and self._http.session is not None:
            await self._http.close()
        if self._media is not None:
            await self._media.close()

    async def fetch_media(self, path: str, limit: int) -> bytes:
        """The bytes of a customer's MMS file by the path of its media resource, at most ``limit``.
        Asked of ``twilio.api_base`` with the account's credentials (an account may require them for
        media); the redirect to the file's storage is followed without them (aiohttp drops them on a
        change of host) and through the egress guard."""
        if not MEDIA_PATH.match(path):
            raise AttachmentUnavailable("not a Twilio media resource")
        if self._media is None:
            self._media = self._egress.session(timeout=aiohttp.ClientTimeout(total=60))
        url = (self._line.api_base or TWILIO_API).rstrip("/") + path
        credentials = base64.b64encode(f"{self._line.account_sid}:{self._line.auth_token}".encode()).decode()
        try:
            async with self._media.get(
                url, headers={"Authorization": f"Basic {credentials}"}, max_redirects=3
            ) as response:
                if response.status != 200:
                    raise AttachmentUnavailable(f"Twilio answered {response.status} for the media file")
                return await read_capped(response.content.iter_chunked(65_536), limit, response.content_length)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise AttachmentUnavailable(f"twilio media: {refusal(exc) or type(exc).__name__}") from None

    async def send_text(self, to: str, text: str, media_url: str | None = None) -> str:
        """Send one SMS part (an MMS with ``media_url``); returns its MessageSid."""
        client = self._started()
        sender = (
            {"messaging_service_sid": self._line.messaging_service_sid}
            if self._line.messaging_service_sid
            else {"from_": self._line.from_number}
        )
        callback = {"status_callback": f"{self._public_url}/webhooks/sms"} if self._public_url else {}
        try:
            media = {"media_url": [media_url]} if media_url else {}
            message = await client.messages.create_async(to=to, body=text, **sender, **callback, **media)
        except TwilioRestException as exc:
            raise _send_error(exc) from None
        except (aiohttp.ClientError, TimeoutError) as exc:
            if refused := refusal(exc):
                raise PermanentSendError(f"twilio: {refused}; nothing sent") from None
            raise RetryableSendError(f"Twilio unreachable: {type(exc).__name__}") from None
        return str(message.sid)


def _forbidden(reason: str) -> VerificationError:
    error = VerificationError(reason)
    error.status = 403
    return error


def _send_error(exc: TwilioRestException) -> RetryableSendError | PermanentSendError:
    code = f" (code {exc.code})" if exc.code else ""
    if exc.status == 429:
        return RetryableSendError(f"Twilio answered {exc.status}{code}: {exc.msg}", retry_after=last_retry_after())
    if exc.status >= 500:
        return RetryableSendError(f"Twilio answered {exc.status}{code}: {exc.msg}")
    reason = PERMANENT_CODES.get(exc.code or 0, exc.msg)
    return PermanentSendError(f"Twilio refused the message{code}: {reason}")


def _media_kind(mime: str | None) -> str:
    main = (mime or "").partition("/")[0]
    return {"image": "image", "audio": "audio", "video": "video"}.get(
        main, "contact" if mime == "text/vcard" else "document" if mime else "other"
    )


def _seconds(value: str | None) -> int:
    try:
        return max(int(value or 0), 0)
    except ValueError:
        raise MalformedPayload(f"call duration {value!r} is not a number of seconds") from None


def _timestamp(value: str | None) -> datetime:
    if value:
        try:
            return parsedate_to_datetime(value).astimezone(UTC)
        except (TypeError, ValueError):
            pass
    return utcnow()
