"""WhatsApp Cloud API webhook payloads normalised into ``Inbound`` / ``StatusUpdate``.

One payload may batch several entries, each with several changes, each with several messages and
status reports: every one of them is read. Handled messages: text, interactive replies (buttons
and lists), template quick-reply buttons, images, documents, audio, video, stickers, locations and
contact cards (media as attachments with their media id, for a later download). Each customer
message opens (or extends) the 24-hour customer-service window. Orders, WhatsApp Flow replies and
messages WhatsApp does not pass on (type ``unsupported``: an edit, a deleted message, a new type)
are kept as a line the agent sees ("sent an order: …"). Reactions, system notices and fields other
than ``messages`` are well-formed events we do not handle: logged, acknowledged.
A change or message that is not what Meta documents is left out on its own (logged as
``whatsapp.entry_malformed``); what is valid beside it is recorded, and the payload answered 200, so
Meta does not resend the same body for days. Only a body that is not a payload at all is a 400.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from bot.handlers.kit.payload import Payload, e164, unix_time
from bot.handlers.kit.protocol import MalformedPayload, UnsupportedEvent
from bot.handlers.whatsapp.consent import STOPPED_MARKETING
from bot.logs import log_event
from conversations.traffic import (
    Attachment,
    ConsentChange,
    DeliveryStatus,
    Identity,
    Inbound,
    ProviderEvent,
    StatusUpdate,
)

log = logging.getLogger("omnirouter.handlers.whatsapp")

CHANNEL = "whatsapp"
SERVICE_WINDOW = timedelta(hours=24)
_MEDIA = {"image": "image", "video": "video", "audio": "audio", "document": "document", "sticker": "image"}
_NOT_CONTENT = ("reaction", "system", "ephemeral", "request_welcome")  # acknowledged, not shown
_PREFERENCES = {"stop": "stop", "resume": "start"}  # marketing messages: the consent records' states
_STATUSES = {
    s.value: s for s in (DeliveryStatus.SENT, DeliveryStatus.DELIVERED, DeliveryStatus.READ, DeliveryStatus.FAILED)
}


def parse_payload(body: Payload, account_id: str, phone_number_id: str | None) -> list[ProviderEvent]:
    """Every message and status report of a webhook payload for ``phone_number_id``."""
    if body.string("object") != "whatsapp_business_account":
        raise UnsupportedEvent(f"object {body.string('object')!r} is not a WhatsApp Business Account event")
    items: list[ProviderEvent] = []
    ignored: list[str] = []
    for entry in body.objects("entry", required=True):
        for change in entry.objects("changes", required=True):
            field = change.string("field")
            if field not in ("messages", "user_preferences"):
                ignored.append(f"field {field}")
                continue
            value = change.obj("value")
            metadata = value.opt_obj("metadata")
            number = metadata.opt_string("phone_number_id") if metadata else None
            if phone_number_id and number and number != phone_number_id:
                ignored.append(f"phone number {number} is not this account's")
                continue
            try:
                if field == "user_preferences":
                    items += _preferences(value, account_id, ignored)
                else:
                    items += _changes(value, account_id, ignored)
            except MalformedPayload as exc:  # this change only: the others are kept
                ignored.append(f"malformed: {exc}")
    for reason in ignored:
        malformed = reason.startswith("malformed: ")
        event, level = (
            ("whatsapp.entry_malformed", logging.WARNING) if malformed else ("whatsapp.event_ignored", logging.INFO)
        )
        log_event(log, event, level, account=account_id, reason=reason[:200])
    if not items:
        raise UnsupportedEvent("; ".join(ignored) or "no messages or statuses in the payload")
    return items


def _changes(value: Payload, account_id: str, ignored: list[str]) -> list[ProviderEvent]:
    names = {}
    for contact in value.objects("contacts"):
        profile = contact.opt_obj("profile")
        if contact.opt_string("wa_id") and profile and profile.opt_string("name"):
            names[contact.opt_string("wa_id")] = profile.opt_string("name")
    found: list[ProviderEvent] = []
    for message in value.objects("messages"):
        try:
            found.append(_message(message, account_id, names))
        except UnsupportedEvent as exc:
            ignored.append(str(exc))
        except MalformedPayload as exc:  # one broken message (pywa's tests carry such): its siblings stay
            ignored.append(f"malformed: {exc}")
    for status in value.objects("statuses"):
        try:
            update = _status(status, account_id)
        except MalformedPayload as exc:
            ignored.append(f"malformed: {exc}")
            continue
        if update is None:
            ignored.append(f"status {status.opt_string('status')!r}")
        else:
            found.append(update)
    for error in value.objects("errors"):
        ignored.append(f"error {error.opt_integer('code')}: {error.opt_string('title')}")
    return found


def _message(message: Payload, account_id: str, names: dict[str | None, str | None]) -> Inbound:
    sender = (message.opt_string("from") or "").strip()
    if not sender:  # a business-scoped user id without a number: not handled yet
        raise UnsupportedEvent("message without a sender number")
    kind = message.string("type")
    text, attachments, meta = _content(message, kind)
    context = message.opt_obj("context")
    if context is not None and context.opt_string("id"):
        meta["reply_to"] = context.opt_string("id")
    sent_at = unix_time(message.string("timestamp"))
    assert sent_at is not None
    return Inbound(
        account_id=account_id,
        channel=CHANNEL,
        external_id=message.identifier("id"),
        sender=Identity(CHANNEL, sender),
        sender_name=names.get(sender),
        text=text,
        attachments=attachments,
        sent_at=sent_at,
        phone=e164(sender),
        meta={"type": kind, **meta},
        window_ends_at=sent_at + SERVICE_WINDOW,
    )


def _content(message: Payload, kind: str) -> tuple[str, tuple[Attachment, ...], dict[str, Any]]:
    """(text, attachments, meta) of one message by its type."""
    if kind == "text":
        return message.obj("text").string("body"), (), {}
    if kind == "interactive":
        interactive = message.obj("interactive")
        reply = interactive.opt_obj("button_reply") or interactive.opt_obj("list_reply")
        if (flow := interactive.opt_obj("nfm_reply")) is not None:  # a WhatsApp Flow's answers
            answers = flow.opt_string("response_json") or ""
            return f"sent a form: {flow.opt_string('name') or 'flow'} {answers}".strip(), (), {"flow": answers}
        if reply is None:
            raise UnsupportedEvent(f"interactive reply of type {interactive.opt_string('type')!r}")
        return reply.string("title"), (), {"reply_id": reply.string("id")}
    if kind == "order":  # from the business's catalog
        order = message.obj("order")
        items = order.objects("product_items")
        lines = ", ".join(
            f"{i.opt_integer('quantity') or 1} × {i.opt_string('product_retailer_id') or '?'}" for i in items
        )
        note = order.opt_string("text") or ""
        return f"sent an order: {lines}{' — ' + note if note else ''}", (), {"catalog": order.opt_string("catalog_id")}
    if kind == "button":  # a quick-reply button of a template
        button = message.obj("button")
        return button.string("text"), (), {"reply_id": button.opt_string("payload")}
    if kind in _MEDIA:
        media = message.obj(kind)
        attachment = Attachment(
            kind=_MEDIA[kind],
            name=media.opt_string("filename"),
            mime_type=media.opt_string("mime_type"),
            provider_ref=media.identifier("id"),
        )
        return media.opt_string("caption") or "", (attachment,), {}
    if kind == "location":
        place = message.obj("location")
        where = f"geo:{place.opt_number('latitude')},{place.opt_number('longitude')}"
        label = place.opt_string("name") or place.opt_string("address")
        return label or "", (Attachment(kind="location", name=label, url=where),), {}
    if kind == "contacts":
        cards = []
        for card in message.objects("contacts", required=True):
            name = card.opt_obj("name")
            phones = card.objects("phones")
            cards.append(
                Attachment(
                    kind="contact",
                    name=name.opt_string("formatted_name") if name else None,
                    provider_ref=phones[0].opt_string("phone") if phones else None,
                )
            )
        return "", tuple(cards), {}
    if kind in _NOT_CONTENT:
        raise UnsupportedEvent(f"message of type {kind!r}")
    # what WhatsApp does not pass on (an edit, a deleted message, a type this release does not know):
    # the agent still sees that the customer did something
    errors = message.objects("errors")
    why = f": {errors[0].opt_string('title') or errors[0].opt_string('message')}" if errors else ""
    return f"sent a message of a type not shown here ({kind}{why})", (), {"unsupported": kind}


def _preferences(value: Payload, account_id: str, ignored: list[str]) -> list[ProviderEvent]:
    """A customer stopping or resuming marketing messages in WhatsApp (``user_preferences``)."""
    found: list[ProviderEvent] = []
    for preference in value.objects("user_preferences"):
        state = _PREFERENCES.get(preference.opt_string("value") or "")
        if preference.opt_string("category") != "marketing_messages" or state is None:
            ignored.append(f"preference {preference.opt_string('category')!r}: {preference.opt_string('value')!r}")
            continue
        at = preference.timestamp("timestamp")
        found.append(ConsentChange(account_id, CHANNEL, preference.identifier("wa_id"), state, at))
    return found


def _status(status: Payload, account_id: str) -> StatusUpdate | None:
    state = _STATUSES.get(status.string("status"))
    if state is None:
        return None
    errors = status.objects("errors")
    error = None
    if errors:
        first = errors[0]
        error = f"{first.opt_integer('code')}: {first.opt_string('title') or first.opt_string('message')}"
    stopped = any(e.opt_integer("code") == STOPPED_MARKETING for e in errors)
    at = unix_time(status.string("timestamp"))
    assert at is not None
    return StatusUpdate(
        account_id=account_id,
        channel=CHANNEL,
        external_id=status.identifier("id"),
        status=state,
        at=at,
        error=error,
        opted_out=(status.opt_string("recipient_id") or None) if stopped else None,
    )
