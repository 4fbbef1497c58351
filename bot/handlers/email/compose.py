"""Our side of an e-mail conversation: thread tokens, plus-addresses, and the replies we send.

Every reply carries what lets the customer's answer find its thread again, whatever their mail
program keeps: ``In-Reply-To``/``References`` (the Message-IDs of the thread), our own
``Message-ID`` (stored before sending), a ``Reply-To`` plus-address ``support+<token>@...`` and a
``[#<token>]`` in the subject. Replies are plain text with an HTML alternative built from that
text (escaped: nothing a customer wrote ever becomes markup). Bot and system replies are stamped
``Auto-Submitted: auto-replied`` (RFC 3834) so other robots do not answer them.
"""

from __future__ import annotations

import base64
import hashlib
import html
import re
from collections.abc import Iterable, Sequence
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime

from conversations.models import utcnow

_SUBJECT_TOKEN = re.compile(r"\[#([a-z2-7]{8})\]")
_REPLY_PREFIX = re.compile(r"^\s*((re|aw|sv|antw|odp|vs|ha|res)\s*(\[\d+\])?\s*:\s*)+", re.IGNORECASE)


def thread_token(thread_id: str) -> str:
    """A short token naming a thread in subjects and plus-addresses (8 base32 characters)."""
    digest = hashlib.sha256(thread_id.encode()).digest()
    return base64.b32encode(digest[:5]).decode().lower()


def tokens_in(subject: str, recipients: Iterable[str], our_address: str) -> list[str]:
    """Thread tokens a mail carries: in a plus-address of ours, then in the subject."""
    local, _, domain = our_address.lower().partition("@")
    found = []
    for recipient in recipients:
        name, _, host = recipient.lower().partition("@")
        base, plus, tag = name.partition("+")
        if plus and base == local and host == domain and re.fullmatch(r"[a-z2-7]{8}", tag):
            found.append(tag)
    found += _SUBJECT_TOKEN.findall(subject.lower())
    return list(dict.fromkeys(found))


def plus_address(address: str, token: str) -> str:
    local, _, domain = address.partition("@")
    return f"{local}+{token}@{domain}"


def our_message_id(message_id: str, address: str) -> str:
    """The Message-ID of one of our outbound messages: the same on every retry of its send."""
    return f"omnirouter.{message_id}@{address.partition('@')[2] or 'localhost'}"


def reply_subject(subject: str, token: str) -> str:
    base = _SUBJECT_TOKEN.sub("", _REPLY_PREFIX.sub("", subject)).strip() or "Your message"
    return f"Re: {base} [#{token}]"


def text_to_html(text: str) -> str:
    """The HTML alternative of a plain-text reply: escaped paragraphs, line breaks kept."""
    paragraphs = [p for p in re.split(r"\n\s*\n", text.strip()) if p.strip()]
    body = "".join(f"<p>{html.escape(p).replace(chr(10), '<br>')}</p>" for p in paragraphs)
    return f'<!DOCTYPE html><html><body style="font-family:sans-serif">{body}</body></html>'


def compose_reply(
    *,
    text: str,
    to: str,
    from_address: str,
    from_name: str,
    subject: str,
    message_id: str,
    in_reply_to: str | None,
    references: Sequence[str],
    reply_to: str | None,
    automatic: bool,
) -> EmailMessage:
    """One outbound mail in a thread (``message_id`` and references without angle brackets)."""
    msg = EmailMessage()
    local, _, domain = from_address.partition("@")
    msg["From"] = Address(display_name=from_name, username=local, domain=domain)
    msg["To"] = to
    if reply_to:
        msg["Reply-To"] = Address(display_name=from_name, addr_spec=reply_to)
    msg["Subject"] = subject
    msg["Date"] = format_datetime(utcnow())
    msg["Message-ID"] = f"<{message_id}>"
    if in_reply_to:
        msg["In-Reply-To"] = f"<{in_reply_to}>"
    if references:
        msg["References"] = " ".join(f"<{ref}>" for ref in references)
    if automatic:
        msg["Auto-Submitted"] = "auto-replied"
    msg.set_content(text)
    msg.add_alternative(text_to_html(text), subtype="html")
    return msg
