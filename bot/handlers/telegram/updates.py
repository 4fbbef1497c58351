"""Telegram ``Update`` objects normalised into ``Inbound`` / ``MessageEdit``.

Handled (private chats with the bot): text, captions, photos, documents, voice, audio, video,
stickers and locations as attachments (file ids kept for a later download), a shared contact
(its phone number joins the sender's contact when it is the sender's own), ``/start <payload>``
deep links, edited messages, and inline-button presses (``callback_query``). Everything else
(channel posts, group chats, membership changes, ...) is a well-formed event we do not handle.

Dedup: a message is keyed by ``<chat id>:<message id>`` — what a redelivered ``update_id``
carries again — and a button press by ``cb:<callback query id>``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bot.handlers.kit.payload import Payload, e164, unix_time
from bot.handlers.kit.protocol import UnsupportedEvent
from conversations.traffic import Attachment, Identity, Inbound, MessageEdit, ProviderEvent

CHANNEL = "telegram"
ALLOWED_UPDATES = ("message", "edited_message", "callback_query")  # what setWebhook/getUpdates ask for

# message field -> (attachment kind, default MIME type)
_FILES: Mapping[str, tuple[str, str | None]] = {
    "document": ("document", None),
    "voice": ("audio", "audio/ogg"),
    "audio": ("audio", None),
    "video": ("video", "video/mp4"),
    "video_note": ("video", "video/mp4"),
    "animation": ("video", None),
    "sticker": ("image", "image/webp"),
}


def parse_update(update: Payload, account_id: str) -> list[ProviderEvent]:
    """One update; raises ``UnsupportedEvent`` for kinds we do not handle."""
    update_id = update.integer("update_id")
    if (message := update.opt_obj("message")) is not None:
        return [_inbound(message, account_id, update_id)]
    if (edited := update.opt_obj("edited_message")) is not None:
        inbound = _inbound(edited, account_id, update_id)
        edit_time = unix_time(edited.opt_integer("edit_date")) or inbound.sent_at
        assert edit_time is not None
        return [MessageEdit(message=inbound, edited_at=edit_time)]
    if (query := update.opt_obj("callback_query")) is not None:
        return [_button_press(query, account_id, update_id)]
    kinds = sorted(k for k in update.raw if k != "update_id")
    raise UnsupportedEvent(f"telegram update {update_id} of kind {', '.join(kinds) or 'none'} is not handled")


def _sender(message: Payload) -> tuple[Identity, str | None, dict[str, Any], Payload]:
    chat = message.obj("chat")
    if chat.string("type") != "private":
        raise UnsupportedEvent(f"telegram {chat.string('type')} chats are not handled, only private chats")
    user = message.opt_obj("from") or chat
    name = _full_name(user)
    meta = {
        k: v
        for k, v in (("username", user.opt_string("username")), ("language", user.opt_string("language_code")))
        if v
    }
    return Identity(CHANNEL, str(chat.integer("id"))), name, meta, user


def _inbound(message: Payload, account_id: str, update_id: int) -> Inbound:
    sender, name, meta, user = _sender(message)
    text = message.opt_string("text") or message.opt_string("caption") or ""
    attachments = _attachments(message)
    phone = _own_phone(message, user)
    if not text and not attachments and (described := _described(message)) is not None:
        text, meta["kind"] = described  # shown to the agent as what the customer did
    if not text and not attachments:
        raise UnsupportedEvent("telegram message without text or content we handle")
    meta["update_id"] = update_id
    if text.startswith("/start"):
        command, _, payload = text.partition(" ")
        if (command == "/start" or command.startswith("/start@")) and payload.strip():
            meta["start_payload"] = payload.strip()
    return Inbound(
        account_id=account_id,
        channel=CHANNEL,
        external_id=f"{sender.address}:{message.integer('message_id')}",
        sender=sender,
        sender_name=name,
        text=text,
        attachments=attachments,
        sent_at=unix_time(message.integer("date")),
        phone=phone,
        meta=meta,
    )


def _button_press(query: Payload, account_id: str, update_id: int) -> Inbound:
    message = query.opt_obj("message")
    if message is None:
        raise UnsupportedEvent("telegram button press on an inline-mode message is not handled")
    sender, name, meta, _ = _sender(message)
    data = query.opt_string("data")
    if data is None:
        raise UnsupportedEvent("telegram callback query without data (a game) is not handled")
    name = _full_name(query.obj("from")) or name
    meta.update(
        update_id=update_id,
        callback_query_id=query.identifier("id"),
        pressed_on=f"{sender.address}:{message.integer('message_id')}",
    )
    return Inbound(
        account_id=account_id,
        channel=CHANNEL,
        external_id=f"cb:{query.identifier('id')}",
        sender=sender,
        sender_name=name,
        text=data,
        meta=meta,
    )


def _described(message: Payload) -> tuple[str, str] | None:
    """What the customer did, in words, for content that is neither text nor a file: a web app's
    data, shared users or chats, a poll, a dice, a story; ``None`` for anything else."""
    if (app := message.opt_obj("web_app_data")) is not None:
        return app.opt_string("data") or "(sent data from a web app)", "web_app_data"
    if (shared := message.opt_obj("users_shared")) is not None:
        names = [_full_name(u) or str(u.opt_integer("user_id")) for u in shared.objects("users")]
        return "shared users: " + (", ".join(names) or "(none)"), "users_shared"
    if (chat := message.opt_obj("chat_shared")) is not None:
        return f"shared a chat: {chat.opt_string('title') or chat.opt_integer('chat_id')}", "chat_shared"
    if (poll := message.opt_obj("poll")) is not None:
        options = " / ".join(o.opt_string("text") or "" for o in poll.objects("options"))
        return f"sent a poll: {poll.opt_string('question') or ''} ({options})", "poll"
    if (dice := message.opt_obj("dice")) is not None:
        return f"sent {dice.opt_string('emoji') or 'a dice'} {dice.opt_integer('value')}", "dice"
    if message.opt_obj("story") is not None:
        return "shared a story", "story"
    return None


def _full_name(person: Payload) -> str | None:
    return " ".join(p for p in (person.opt_string("first_name"), person.opt_string("last_name")) if p) or None


def _attachments(message: Payload) -> tuple[Attachment, ...]:
    found: list[Attachment] = []
    photos = message.objects("photo")
    if photos:  # sizes of one picture, smallest first: keep the largest
        best = photos[-1]
        found.append(
            Attachment(
                kind="image",
                mime_type="image/jpeg",
                size=best.opt_integer("file_size"),
                provider_ref=best.identifier("file_id"),
            )
        )
    for field, (kind, default_mime) in _FILES.items():
        if (media := message.opt_obj(field)) is not None:
            found.append(
                Attachment(
                    kind=kind,
                    name=media.opt_string("file_name"),
                    mime_type=media.opt_string("mime_type") or default_mime,
                    size=media.opt_integer("file_size"),
                    provider_ref=media.identifier("file_id"),
                )
            )
    if (place := message.opt_obj("location")) is not None:
        found.append(
            Attachment(kind="location", url=f"geo:{place.opt_number('latitude')},{place.opt_number('longitude')}")
        )
    if (contact := message.opt_obj("contact")) is not None:
        found.append(Attachment(kind="contact", name=_full_name(contact), provider_ref=contact.string("phone_number")))
    return tuple(found)


def _own_phone(message: Payload, user: Payload) -> str | None:
    """The number of a shared contact, only when it is the sender's own (Telegram fills
    ``user_id`` from the address book; a customer forwarding someone else's card must not merge
    with that person)."""
    contact = message.opt_obj("contact")
    if contact is None or contact.opt_integer("user_id") is None:
        return None
    if contact.opt_integer("user_id") != user.opt_integer("id"):
        return None
    return e164(contact.string("phone_number"))
