"""The forms a web chat visitor fills in, sent over the chat's socket:

* the **pre-chat form** (``{"type": "prechat", "name", "email", "phone", "consent"}``), which an
  account's admin may turn on for the website widget, and give a web chat inbox a form of its own
  (its ``prechat`` setting; without one, the account's form is asked there): who the visitor is, before their first
  message. What they give becomes their contact's name and addresses (an e-mail or phone number
  leads to this contact unless another contact has it already: an address nobody verified never
  merges two people), and a consent is kept on the contact with its time and the privacy notice
  it was given for. Not asked again of a visitor whose contact has it, or who has talked with us
  before, or whom the site vouched for (identity verification: embedding.py).
* the **offline form** (``{"type": "offline", "id", "name", "email", "text"}``), shown instead of
  the chat outside the account's business hours: it becomes a conversation in the human queue
  (never answered by the bot) with the e-mail on the contact, so an agent can answer by e-mail.

A form that is not filled in as it must be is answered ``{"type": "form_error", "form", "field",
"code"}``; the page says it in the visitor's language (``code`` is one of ``FORM_ERRORS``).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from bot.handlers.kit.protocol import MalformedPayload
from bot.handlers.kit.sink import InboundSink
from conversations.errors import StoreUnavailable
from conversations.models import utcnow
from conversations.repositories import Repositories
from conversations.traffic import Identity, Inbound

FORM_FRAMES = ("prechat", "offline")
FORM_ERRORS = ("name_missing", "bad_email", "bad_phone", "email_or_phone", "consent_missing", "text_missing")
FIELDS = ("name", "email", "phone")
OFFLINE_REASON = "offline_form"  # the conversation's escalation reason
_EMAIL = re.compile(r"^[^@\s<>\"'(),;:\[\]]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)+$")
_PHONE = re.compile(r"^\+[1-9]\d{6,14}$")
_PHONE_MARKS = re.compile(r"[\s().-]")
MAX_NAME = 80
MAX_URL = 500


class BadPrechat(ValueError):
    """A pre-chat form an admin set up that cannot be kept: the privacy notice's address."""


@dataclass(frozen=True)
class PrechatForm:
    """What an account's pre-chat form asks: each field, and a consent to its privacy notice."""

    enabled: bool = False
    name: bool = False
    email: bool = False
    phone: bool = False
    consent: bool = False
    privacy_url: str = ""

    @classmethod
    def of(cls, widget: object) -> PrechatForm:
        """The form kept in an account's ``widget`` (``widget["prechat"]``); off when malformed."""
        return cls.stored(widget.get("prechat") if isinstance(widget, Mapping) else None)

    @classmethod
    def stored(cls, stored: object) -> PrechatForm:
        """The form as kept in the store; off when malformed. A flag may come back as 0 or 1 (the
        embedded store gives a boolean set inside a document back so)."""
        if not isinstance(stored, Mapping):
            return cls()
        url = stored.get("privacy_url")
        flags = {k: _flag(stored.get(k)) for k in ("enabled", *FIELDS, "consent")}
        return cls(**flags, privacy_url=url if isinstance(url, str) and _https(url) else "")

    @classmethod
    def of_inbox(cls, account: PrechatForm, config: Mapping[str, Any]) -> PrechatForm:
        """The form a web chat inbox asks: its own (its settings' ``prechat``), else ``account``."""
        own = config.get("prechat")
        return cls.stored(own) if isinstance(own, Mapping) else account

    @classmethod
    def given(cls, doc: Mapping[str, Any]) -> PrechatForm:
        """The form an API call sets (``enabled`` unless it says otherwise); :class:`BadPrechat`
        says in words what is wrong with it."""
        url = str(doc.get("privacy_url") or "").strip()
        if url and not _https(url):
            raise BadPrechat("privacy_url must be an https address (https://…)")
        flags = {k: doc.get(k) is True for k in (*FIELDS, "consent")}
        if flags["consent"] and not url:
            raise BadPrechat("asking for consent needs privacy_url, the privacy notice's https address")
        return cls(enabled=doc.get("enabled", True) is True, **flags, privacy_url=url)

    @classmethod
    def read(cls, form: Mapping[str, str]) -> PrechatForm:
        """The form an admin's settings set (checkboxes ``prechat``, ``prechat_name`` … and the
        privacy notice's https address, needed when consent is asked)."""
        url = form.get("privacy_url", "").strip()
        if url and not _https(url):
            raise BadPrechat(url[:100])
        flags = {k: form.get(f"prechat_{k}") == "on" for k in (*FIELDS, "consent")}
        if flags["consent"] and not url:
            raise BadPrechat("")
        return cls(enabled=form.get("prechat") == "on", **flags, privacy_url=url)

    def to_doc(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def public(self) -> dict[str, Any] | None:
        """What the chat page needs to show the form (``None``: no form)."""
        if not self.enabled or not (self.name or self.email or self.phone or self.consent):
            return None
        fields = [f for f in FIELDS if getattr(self, f)]
        return {"fields": fields, "consent": self.consent, "privacy_url": self.privacy_url}


def _flag(value: object) -> bool:
    return value is True or (type(value) is int and value == 1)


def _https(url: str) -> bool:
    try:
        parts = urlsplit(url)  # a bracketed host that is not an IPv6 address is refused here
        parts.port  # noqa: B018 - and so is a port that is not a number
    except ValueError:
        return False
    good = parts.scheme == "https" and bool(parts.hostname) and not parts.username and not parts.password
    return good and len(url) <= MAX_URL and not any(c.isspace() for c in url)


def email_address(text: str) -> str | None:
    """An e-mail address as a visitor typed it, lower-cased; ``None`` if it is not one."""
    text = text.strip()
    return text.lower() if len(text) <= 254 and _EMAIL.match(text) else None


def phone_number(text: str) -> str | None:
    """A phone number with its country code (``+371 2000 0000``, ``00371…``) in E.164; ``None`` if
    it is not one."""
    digits = _PHONE_MARKS.sub("", text.strip())
    if digits.startswith("00"):
        digits = "+" + digits[2:]
    return digits if _PHONE.match(digits) else None


def _error(form: str, field: str, code: str) -> dict[str, Any]:
    return {"type": "form_error", "form": form, "field": field, "code": code}


def _text(payload: Mapping[str, Any], key: str, longest: int) -> str:
    value = payload.get(key)
    return value.strip()[:longest] if isinstance(value, str) else ""


def _check_prechat(form: PrechatForm, payload: Mapping[str, Any]) -> tuple[dict[str, str], dict[str, Any] | None]:
    """What the visitor gave (``name``, ``email``, ``phone``) or the first thing wrong with it."""
    given: dict[str, str] = {}
    name, email, phone = (_text(payload, f, 300) for f in FIELDS)
    if form.name:
        if not name:
            return given, _error("prechat", "name", "name_missing")
        given["name"] = name[:MAX_NAME]
    if form.email and email:
        if (address := email_address(email)) is None:
            return given, _error("prechat", "email", "bad_email")
        given["email"] = address
    if form.phone and phone:
        if (number := phone_number(phone)) is None:
            return given, _error("prechat", "phone", "bad_phone")
        given["phone"] = number
    if (form.email or form.phone) and not ("email" in given or "phone" in given):
        field, code = (
            ("email", "bad_email")
            if not form.phone
            else ("phone", "bad_phone")
            if not form.email
            else ("email", "email_or_phone")
        )
        return given, _error("prechat", field, code)
    if form.consent and payload.get("consent") is not True:
        return given, _error("prechat", "consent", "consent_missing")
    return given, None


async def prechat_form(store: Repositories, account_id: str, inbox_id: str | None) -> PrechatForm:
    """The pre-chat form of the account's web chat ``inbox_id`` (``None``: its first web chat)."""
    account = await store.accounts.get_account(account_id)
    form = PrechatForm.of(account.widget if account else None)
    inbox = await store.inboxes.get_inbox(inbox_id) if inbox_id else None
    if inbox is None or inbox.account_id != account_id:
        return form
    return PrechatForm.of_inbox(form, inbox.config)


async def prechat_wanted(
    store: Repositories, account_id: str, visitor: str, contact_id: str | None, talked: bool, inbox_id: str | None
) -> bool:
    """Whether the visitor is asked the pre-chat form of the web chat ``inbox_id`` (``None``: the
    account's first) before their first message."""
    if visitor.startswith("u") or talked:  # a user the site vouched for; a visitor we know
        return False
    if (await prechat_form(store, account_id, inbox_id)).public() is None:
        return False
    contact = await store.contacts.get_contact(contact_id) if contact_id else None
    return contact is None or not contact.prechat


async def _remember(store: Repositories, account_id: str, visitor: str, given: Mapping[str, str], **kept: Any) -> str:
    """The visitor's contact, named and given the addresses they wrote; ``kept`` set on it too."""
    now = utcnow()
    contact_id = await store.contacts.find_or_create_contact(
        account_id, Identity("webchat", visitor), given.get("name"), now
    )
    values = {**kept, **({"name": given["name"]} if given.get("name") else {})}
    if values:
        await store.contacts.update_contact(account_id, contact_id, now, **values)
    for channel in ("email", "phone"):
        if given.get(channel):
            await store.contacts.add_given_identity(account_id, contact_id, Identity(channel, given[channel]), now)
    return contact_id


async def _prechat(
    store: Repositories, account_id: str, visitor: str, payload: Mapping[str, Any], inbox_id: str | None
) -> dict[str, Any]:
    form = await prechat_form(store, account_id, inbox_id)
    if form.public() is None:
        return {"type": "prechat_done"}  # nothing to ask (the admin turned it off meanwhile)
    given, wrong = _check_prechat(form, payload)
    if wrong is not None:
        return wrong
    filled: dict[str, Any] = {"filled_at": utcnow().isoformat(), "fields": sorted(given)}
    if form.consent:
        filled["consent"] = {"given_at": utcnow().isoformat(), "privacy_url": form.privacy_url}
    await _remember(store, account_id, visitor, given, prechat=filled)
    return {"type": "prechat_done", "name": given.get("name")}


@dataclasses.dataclass(frozen=True)
class VisitorForms:
    """Answers the forms' frames of one web chat (``inbox_id``; ``None``: the account's first):
    records through ``sink``, makes the offline message with ``inbound`` (the adapter's payload
    reader)."""

    store: Repositories
    sink: InboundSink
    inbound: Callable[[str, str, Mapping[str, Any]], Inbound]
    inbox_id: str | None = None

    async def answer(self, account_id: str, visitor: str, payload: Mapping[str, Any]) -> dict[str, Any]:
        """The answer to one of ``FORM_FRAMES``."""
        try:
            if payload.get("type") == "prechat":
                return await _prechat(self.store, account_id, visitor, payload, self.inbox_id)
            return await self._offline(account_id, visitor, payload)
        except StoreUnavailable:
            return {"type": "error", "code": "store_unavailable", "retry": False, "detail": "try again in a moment"}

    async def _offline(self, account_id: str, visitor: str, payload: Mapping[str, Any]) -> dict[str, Any]:
        email = email_address(_text(payload, "email", 300))
        if email is None:
            return _error("offline", "email", "bad_email")
        if not _text(payload, "text", 10):
            return _error("offline", "text", "text_missing")
        name = _text(payload, "name", MAX_NAME)
        try:
            fields = {"id": payload.get("id"), "text": payload.get("text"), "name": name or None}
            message = self.inbound(account_id, visitor, fields)
        except MalformedPayload as exc:
            return {"type": "error", "code": "bad_message", "id": payload.get("id"), "detail": str(exc)}
        await _remember(self.store, account_id, visitor, {"name": name, "email": email})
        meta = {"no_auto_reply": OFFLINE_REASON, "reply_by_email": email}
        recorded, _ = await self.sink.receive(dataclasses.replace(message, meta=meta))  # the dispatcher has it
        thread_id = recorded.message.thread_id
        await self.store.threads.set_reply_by(thread_id, Identity("email", email))  # agents answer there
        return {"type": "offline_sent", "id": payload.get("id"), "thread_id": thread_id, "email": email}
