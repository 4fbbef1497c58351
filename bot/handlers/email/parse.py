"""Reading a customer's mail with the standard library's ``email`` package.

What the thread shows is what the customer wrote: the plain-text body (or the HTML body turned
into text by ``inscriptis``; customer HTML is never kept or shown as HTML), with the quoted
earlier mails and the signature block below the reply stripped by ``mail-parser-reply``. The full
body is kept beside it, and the raw original is kept by the adapter.

Each text part is decoded on its own in its declared charset (``charsets``); 8-bit headers
(RFC 6532 UTF-8 addresses and names) are read as UTF-8. Mail that must never get an automatic
answer is marked with the reason (``loops``); a bounce is kept even when it names no sender, with
the Message-IDs of the mail it returns.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage, Message, MIMEPart
from email.parser import BytesParser
from email.utils import getaddresses, parsedate_to_datetime

from inscriptis import get_text
from mailparser_reply import EmailReplyParser

from bot.handlers.email.charsets import decode_8bit, decode_text, encoded_words_as_supersets
from bot.handlers.email.limits import REPLY_SCAN_CHARS, bounded_mail
from bot.handlers.email.loops import BOUNCE_SENDER, bounce_error, bounced_ids, loop_reason
from bot.handlers.kit.protocol import MalformedPayload
from conversations.traffic import Attachment, Identity, Inbound

REPLY_LANGUAGES = ["en", "de", "fr", "es", "it", "nl", "pl", "sv", "da", "cs"]
REFERENCES_KEPT = 20
FULL_TEXT_KEPT = 100_000  # characters of the full body kept on the message
MAX_ATTACHMENTS = 100  # attachments listed on the message; the original mail keeps them all
_MESSAGE_ID = re.compile(r"<([^<>\s]+)>")
_BLANK_RUNS = re.compile(r"\n[ \t]*\n(?:[ \t]*\n)+")
_INVISIBLE = re.compile(r"[\u200b\u200c\u200d\u2060\ufeff\u00ad]")
_UNDECODED = re.compile("[\udc80-\udcff]")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_parser = EmailReplyParser(languages=REPLY_LANGUAGES)


@dataclass(frozen=True)
class ParsedMail:
    """One inbound mail as the router needs it."""

    message_id: str
    sender: str
    sender_name: str | None
    subject: str
    text: str  # what the customer wrote in this mail
    full_text: str  # the whole body, quotes and signature included
    recipients: tuple[str, ...] = ()
    in_reply_to: str | None = None
    references: tuple[str, ...] = ()
    attachments: tuple[Attachment, ...] = ()
    sent_at: datetime | None = None
    no_auto_reply: str | None = None  # why this mail must not be answered automatically
    was_html: bool = False
    attachments_dropped: bool = False  # more than MAX_ATTACHMENTS: only the first are listed
    defects: tuple[str, ...] = field(default=())
    bounced: tuple[str, ...] = ()  # a bounce: the Message-IDs of the mail it returns
    bounce_error: str | None = None
    legacy_key: str = ""  # the external id versions before ``dedup_key`` stored this mail under

    @property
    def dedup_key(self) -> str:
        return mail_dedup_key(self.message_id, self.sender)


def mail_dedup_key(message_id: str, sender: str) -> str:
    """What makes two deliveries the same mail (its ``external_id``): its Message-ID and its
    sender (different senders' mails can share a Message-ID: a broken mail program, a forgery)."""
    return f"{message_id}|{sender.lower()}"


def parse_mail(raw: bytes, envelope_recipients: Sequence[str] = ()) -> ParsedMail:
    """Parse one RFC 5322 message; ``MalformedPayload`` when it has no usable sender."""
    try:
        msg = BytesParser(policy=policy.default).parsebytes(bounded_mail(raw))
        assert isinstance(msg, EmailMessage)
        _read_8bit_headers(msg)
        sender_name, sender = _sender(msg)
        no_auto_reply = loop_reason(msg, sender, _header)
        sender_name, sender = _known_sender(sender_name, sender, no_auto_reply)
        body_part = msg.get_body(preferencelist=("plain", "html"))
        full_text, was_html = _body_text(body_part) if body_part is not None else ("", False)
        subject = _clean(_header(msg, "Subject"), keep_newlines=False).strip()
        headers_ok = _addresses(msg, ("To", "Cc", "Delivered-To", "X-Original-To"))
        attachments = list(itertools.islice(_attachments(msg, body_part), MAX_ATTACHMENTS + 1))
        bounced = bounced_ids(msg, _header, full_text) if no_auto_reply == "bounce" else []
        error = bounce_error(msg) if no_auto_reply == "bounce" else None
    except MalformedPayload:
        raise
    except Exception as exc:  # the email package raises many kinds on hostile input, and
        # RecursionError on parts nested thousands deep
        raise MalformedPayload(f"the mail cannot be parsed: {type(exc).__name__}") from None
    own_id = next(iter(_ids(_header(msg, "Message-ID"))), None)
    scanned = full_text[:REPLY_SCAN_CHARS]
    reply = (_parser.parse_reply(scanned) or "").strip() if full_text else ""
    if len(full_text) > len(scanned) and reply == scanned.strip():
        reply = ""  # nothing quoted was found at the start: the whole body is the reply
    return ParsedMail(
        message_id=own_id or _content_id(msg, sender, full_text),
        legacy_key=own_id or _raw_hash_id(raw),
        sender=sender,
        sender_name=sender_name,
        subject=subject,
        text=(reply or full_text.strip())[:FULL_TEXT_KEPT],
        full_text=full_text[:FULL_TEXT_KEPT],
        recipients=tuple(dict.fromkeys([*(a.lower() for a in envelope_recipients), *headers_ok])),
        in_reply_to=next(iter(_ids(_header(msg, "In-Reply-To"))), None),
        references=tuple(_ids(_header(msg, "References")))[-REFERENCES_KEPT:],
        attachments=tuple(attachments[:MAX_ATTACHMENTS]),
        attachments_dropped=len(attachments) > MAX_ATTACHMENTS,
        sent_at=_date(_header(msg, "Date")),
        no_auto_reply=no_auto_reply,
        was_html=was_html,
        defects=tuple(type(d).__name__ for d in msg.defects),
        bounced=tuple(bounced[:REFERENCES_KEPT]),
        bounce_error=error,
    )


def to_inbound(mail: ParsedMail, account_id: str) -> Inbound:
    meta: dict[str, object] = {
        "email": {
            "message_id": mail.message_id,
            "subject": mail.subject,
            "in_reply_to": mail.in_reply_to,
            "references": list(mail.references),
            "recipients": list(mail.recipients),
            "full_text": mail.full_text,
            "html": mail.was_html,
            **({"attachments_dropped": True} if mail.attachments_dropped else {}),
            **({"bounced": list(mail.bounced), "bounce_error": mail.bounce_error} if mail.bounce_error else {}),
        }
    }
    if mail.no_auto_reply:
        meta["no_auto_reply"] = mail.no_auto_reply
    return Inbound(
        account_id=account_id,
        channel="email",
        external_id=mail.dedup_key,
        sender=Identity("email", mail.sender),
        sender_name=mail.sender_name,
        text=mail.text,
        attachments=mail.attachments,
        sent_at=mail.sent_at,
        meta=meta,
    )


def html_to_text(html: str) -> str:
    """Readable text of an HTML body: layout kept as line breaks, no markup, no scripts."""
    return _clean(get_text(html))


def _sender(msg: EmailMessage) -> tuple[str | None, str]:
    """The sender's name and address; an empty address when the mail names none (a null
    sender ``<>``, a display name only, a malformed address)."""
    names = ["Reply-To", "From", "Sender"] if _is_list_rewrite(msg) else ["From", "Sender"]
    for name in names:
        try:
            header = msg.get(name)
            addresses: Iterable[Address] = getattr(header, "addresses", ()) if header is not None else ()
            found = [(a.display_name or None, a.addr_spec) for a in addresses]
        except Exception:  # the email package fails on some malformed addresses (``x@[host``)
            found = [(n or None, a) for n, a in getaddresses([_header(msg, name)])]
        for display_name, addr_spec in found:
            if addr_spec and "@" in addr_spec:
                return _readable_name(display_name), addr_spec.lower()
        if found:  # a sender that names no address: not the one after it either
            return _readable_name(next((n for n, _ in found if n), None)), ""
    return None, ""


def _readable_name(name: str | None) -> str | None:
    """A display name with the bytes its encoded words could not decode shown as U+FFFD."""
    return _UNDECODED.sub("\ufffd", name) if name else None


def _read_8bit_headers(msg: Message) -> None:
    """Headers with raw 8-bit bytes (RFC 6532 UTF-8, or never encoded) read as UTF-8, else
    cp1252: the ``email`` package keeps those bytes as surrogates, and its address parser turned
    them into U+FFFD (``J\ufffd\ufffdhn``). Encoded words are read in their charset's superset."""
    for part in msg.walk():
        items = list(part.raw_items())
        readable = [(name, _readable(value)) for name, value in items]
        if readable == items:
            continue
        for name in dict.fromkeys(name for name, _ in items):
            del part[name]
        for name, value in readable:
            part.set_raw(name, value)


def _readable(value: str) -> str:
    if _has_surrogates(value):
        value = decode_8bit(value.encode("ascii", "surrogateescape"))
    return encoded_words_as_supersets(value)


def _has_surrogates(value: object) -> bool:
    return isinstance(value, str) and _UNDECODED.search(value) is not None


def _known_sender(name: str | None, address: str, loop: str | None) -> tuple[str | None, str]:
    """A bounce naming no sender is recorded as from ``BOUNCE_SENDER``; other mail must name one."""
    if address:
        return name, address
    if loop != "bounce":
        raise MalformedPayload("the mail has no From address")
    return name or "Mail Delivery System", BOUNCE_SENDER


def _is_list_rewrite(msg: EmailMessage) -> bool:
    """DMARC-rewriting lists put the list in From and the author in Reply-To."""
    return bool(_header(msg, "List-Id")) and " via " in _header(msg, "From")


def _addresses(msg: EmailMessage, names: Sequence[str]) -> list[str]:
    values = [str(value) for name in names for value in msg.get_all(name, [])]
    return [addr.lower() for _, addr in getaddresses(values) if "@" in addr]


def _body_text(part: MIMEPart) -> tuple[str, bool]:
    text = _decoded(part)
    if part.get_content_type() == "text/html":
        return html_to_text(text), True
    return _clean(text), False


def _decoded(part: Message) -> str:
    """A text part's content in its declared charset (see ``charsets``)."""
    payload = part.get_payload(decode=True)
    return decode_text(payload if isinstance(payload, bytes) else b"", part.get_content_charset())


def _clean(text: str, keep_newlines: bool = True) -> str:
    text = _INVISIBLE.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
    text = _CONTROL.sub("", text)
    if not keep_newlines:
        return " ".join(text.split())
    text = "\n".join(line.rstrip() for line in text.split("\n"))
    return _BLANK_RUNS.sub("\n\n", text).strip()


def _header(msg: Message, name: str) -> str:
    """A header as text (empty when absent); its raw text when the structured parser fails on a
    hostile value (``Message-ID: <`` raised ``IndexError`` deep in the ``email`` package)."""
    try:
        value = msg.get(name)
    except Exception:
        value = next((v for k, v in msg.raw_items() if k.lower() == name.lower()), None)
    return "" if value is None else str(value)


def _ids(header: str) -> list[str]:
    return _MESSAGE_ID.findall(header)


def _content_id(msg: EmailMessage, sender: str, body: str) -> str:
    """The Message-ID of a mail without one: derived from what the sender wrote (not from the
    trace headers, which differ between deliveries), the same for every delivery of this mail."""
    content = "\n".join([sender, _header(msg, "Date"), _header(msg, "Subject"), body])
    return f"{hashlib.sha256(content.encode('utf-8', 'surrogatepass')).hexdigest()[:32]}@no-message-id.invalid"


def _raw_hash_id(raw: bytes) -> str:
    """The Message-ID earlier versions gave a mail without one (a hash of all its bytes)."""
    return f"{hashlib.sha256(raw).hexdigest()[:32]}@no-message-id.invalid"


def _date(header: str) -> datetime | None:
    try:
        moment = parsedate_to_datetime(header) if header else None
    except (TypeError, ValueError, IndexError):
        return None
    if moment is None:
        return None
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def _leaves(part: MIMEPart) -> Iterable[MIMEPart]:
    """The leaf parts, a forwarded mail (``message/rfc822``) counting as one leaf."""
    if part.get_content_type() == "message/rfc822" or not part.is_multipart():
        yield part
        return
    for sub in part.iter_parts():
        yield from _leaves(sub)


def _attachment_parts(msg: MIMEPart, body: MIMEPart | None) -> Iterable[MIMEPart]:
    for part in _leaves(msg):
        if part is body:
            continue
        disposition = part.get_content_disposition()
        if (
            disposition != "attachment"
            and not part.get_filename()
            and part.get_content_maintype() in ("text", "multipart")
        ):
            continue  # the other alternative of the body, or an inline text part
        yield part


def attachment_payload(raw: bytes, index: int) -> bytes | None:
    """The bytes of the ``index``-th attachment ``parse_mail`` lists for the mail ``raw`` (a
    forwarded mail as its source); ``None`` if it has no such attachment."""
    msg = BytesParser(policy=policy.default).parsebytes(bounded_mail(raw))
    body = msg.get_body(preferencelist=("plain", "html"))
    part = next(itertools.islice(_attachment_parts(msg, body), index, None), None)
    if part is None:
        return None
    if part.get_content_type() == "message/rfc822":
        inner = part.get_payload()
        first = inner[0] if isinstance(inner, list) and inner else None
        return first.as_bytes() if isinstance(first, Message) else None
    payload = part.get_payload(decode=True)
    return payload if isinstance(payload, bytes) else None


def _attachments(msg: MIMEPart, body: MIMEPart | None) -> Iterable[Attachment]:
    for part in _attachment_parts(msg, body):
        mime = part.get_content_type()
        name = part.get_filename()
        if mime == "message/rfc822":
            name = name or "forwarded.eml"
        payload = part.get_payload(decode=True)
        yield Attachment(
            kind=_kind(mime),
            name=_clean(name, keep_newlines=False) if name else None,
            mime_type=mime,
            size=len(payload) if isinstance(payload, bytes) else None,
            provider_ref=_header(part, "Content-ID").strip("<> ") or None,
        )


def _kind(mime: str) -> str:
    main = mime.partition("/")[0]
    if main in ("image", "audio", "video"):
        return main
    return "contact" if mime in ("text/vcard", "text/x-vcard") else "document"
