"""Mail no robot may answer, and the addresses no robot may write to.

An automatic answer to an automatic mail starts a loop, and an answer to a no-reply address goes
nowhere. Mail is recognised by every common signal, as vendors really send it (RFC 3834's
``Auto-Submitted`` is missing from many): delivery reports (RFC 3464 ``multipart/report``), null,
mailer-daemon and postmaster senders, ``X-Failed-Recipients``, bounce subjects of common servers
and carriers; auto-replies by ``Auto-Submitted``, ``X-Autoreply``, ``X-Autorespond``,
``X-Auto-Response-Suppress``, ``X-Apple-Action: VACATION`` (iCloud), ``Precedence: auto_reply``
and vacation subjects; mailing lists and bulk mail; and no-reply senders.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from email.message import Message

BOUNCE_SENDER = "mailer-daemon@bounce.invalid"  # the sender of a bounce that names none
REASONS = ("bounce", "auto_submitted", "mailing_list", "bulk", "no_reply_sender")  # what loop_reason says
_ID = re.compile(r"<([^<>\s]+)>")
_ID_LINE = re.compile(r"^\s*Message-ID:\s*<([^<>\s]+)>", re.IGNORECASE | re.MULTILINE)
_DAEMONS = re.compile(r"^(mailer[-_]?daemon|postmaster|mail[-_]?daemon)$")
_NO_REPLY = re.compile(r"^(no[-_.]?reply|do[-_.]?not[-_.]?reply|no[-_.]?response|bounces?)([-+_.].*)?$")
_BOUNCE_NAMES = re.compile(r"mailer[-_ ]?daemon|mail delivery (system|subsystem)|postmaster", re.IGNORECASE)
_BOUNCE_SUBJECT = re.compile(
    r"^\s*(undeliver(ed|able)|delivery (status notification|failure|has failed)|mail delivery failed"
    r"|returned mail|failure notice|delivery notification|non[- ]?delivery|unzustellbar|nicht zustellbar"
    r"|non remis|non recapitabile|no entregado|не доставлено|недоставленное"
    r"|メールエラー|エラーメール|配信エラー|配送エラー|送信エラー|配信不能|不達|退信|未送达)",
    re.IGNORECASE,
)
_AUTO_SUBJECT = re.compile(
    r"^\s*(auto(matic)?[-_ ]?(reply|response|answer|antwort)|auto:|out of (the )?office|abwesenheit"
    r"|r[ée]ponse automatique|respuesta autom[áa]tica|risposta automatica|automatisch antwoord|autosvar"
    r"|automātiskā atbilde|автоответ|автоматический ответ|自動応答|自動返信|自动回复|자동 ?응답)",
    re.IGNORECASE,
)
_REPORT_PARTS = ("message/delivery-status", "message/disposition-notification", "message/feedback-report")
_HEADERS_PARTS = ("message/rfc822", "text/rfc822-headers", "message/rfc822-headers")

Header = Callable[[Message, str], str]


def loop_reason(msg: Message, sender: str, header: Header) -> str | None:
    """Why ``msg`` must never be answered automatically, or ``None``; ``sender`` may be empty (a
    bounce with a null or malformed From). ``header`` reads one header as text."""
    subject = header(msg, "Subject")
    if _is_report(msg, sender, header):
        return "bounce"
    if _is_auto_reply(msg, header, subject):  # before the weak signals of a bounce: an auto-reply
        return "auto_submitted"  # is often sent from the null sender too (RFC 3834 asks for it)
    if header(msg, "Return-Path").strip() == "<>" or _BOUNCE_SUBJECT.match(subject):
        return "bounce"
    precedence = header(msg, "Precedence").strip().lower()
    if header(msg, "List-Id"):
        return "mailing_list"
    if precedence in ("bulk", "list", "junk"):
        return "bulk"
    if is_no_reply(sender):
        return "no_reply_sender"
    return None


def is_no_reply(address: str) -> bool:
    """Whether ``address`` reads no mail: no-reply, mailer-daemon, postmaster, the null sender."""
    local, _, domain = address.strip().lower().rpartition("@")
    return (
        not local
        or domain.endswith(".invalid")
        or bool(_DAEMONS.match(local) or _NO_REPLY.match(local.partition("+")[0]))
    )


def reads_no_mail(address: str) -> bool:
    """Whether no person can ever read mail sent to ``address``: a mailer daemon, the null
    sender, the stand-in for a bounce that named none (not ``postmaster@``: a person reads that)."""
    local, _, domain = address.strip().lower().rpartition("@")
    return not local or domain.endswith(".invalid") or bool(re.match(r"^mailer[-_]?daemon$", local))


def bounced_ids(msg: Message, header: Header, body_text: str) -> list[str]:
    """The Message-IDs of the mail a bounce returns: its ``In-Reply-To`` and ``References``, the
    returned headers of a delivery report, and ``Message-ID:`` lines quoted in its text."""
    found = _ID.findall(header(msg, "In-Reply-To")) + _ID.findall(header(msg, "References"))
    for part in msg.walk():
        if part.get_content_type() in _HEADERS_PARTS:
            found += _ID_LINE.findall(_returned_headers(part))
    found += _ID_LINE.findall(body_text)
    return list(dict.fromkeys(found))


def bounce_error(msg: Message) -> str:
    """What a delivery report says went wrong (its ``Status`` and ``Diagnostic-Code``), for the
    agent reading why a reply was not delivered."""
    said: list[str] = []
    for part in msg.walk():
        if part.get_content_type() != "message/delivery-status":
            continue
        for block in _blocks(part):
            said += [str(block.get(name, "")).strip() for name in ("Status", "Diagnostic-Code")]
    detail = "; ".join(s for s in dict.fromkeys(said) if s)
    return f"bounced: {detail}"[:240] if detail else "bounced"


def _is_report(msg: Message, sender: str, header: Header) -> bool:
    """The strong signals of a bounce: a delivery report, a mailer daemon writing."""
    if msg.get_content_type() == "multipart/report" or header(msg, "X-Failed-Recipients"):
        return True
    if any(part.get_content_type() in _REPORT_PARTS for part in msg.walk()):
        return True
    if _DAEMONS.match(sender.partition("@")[0]):
        return True
    return not sender and bool(_BOUNCE_NAMES.search(header(msg, "From")))


def _is_auto_reply(msg: Message, header: Header, subject: str) -> bool:
    auto = header(msg, "Auto-Submitted").strip().lower()
    if auto and not auto.startswith("no"):
        return True
    if any(header(msg, name) for name in ("X-Autoreply", "X-Autorespond", "X-Auto-Response-Suppress")):
        return True
    if header(msg, "X-Apple-Action").strip().lower() == "vacation" or _AUTO_SUBJECT.match(subject):
        return True
    return header(msg, "Precedence").strip().lower() == "auto_reply"


def _returned_headers(part: Message) -> str:
    payload = part.get_payload()
    if isinstance(payload, list):  # message/rfc822: the returned mail, parsed
        return "\n".join(f"{k}: {v}" for inner in payload for k, v in _raw_items(inner))
    if isinstance(payload, str):
        return payload
    return ""


def _blocks(part: Message) -> Iterable[Message]:
    payload = part.get_payload()
    return [p for p in payload if isinstance(p, Message)] if isinstance(payload, list) else []


def _raw_items(msg: object) -> list[tuple[str, str]]:
    return list(msg.raw_items()) if isinstance(msg, Message) else []
