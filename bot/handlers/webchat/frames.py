"""The web chat's message frames as the page receives them: a stored message (the welcome's
history) and a reply on its way out."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from bot.handlers.kit.media import PREVIEWED
from conversations.thread_models import Message
from conversations.traffic import Outbound


def file_of(meta: Mapping[str, Any], url: Callable[[str], str]) -> dict[str, Any] | None:
    """The file an agent sent with a reply (``meta["document"]["file"]``), as the page shows it:
    its name, a signed address, and whether it is an image to show."""
    document = meta.get("document")
    if not isinstance(document, Mapping) or not isinstance(document.get("file"), str):
        return None
    mime = str(document.get("mime_type") or "")
    return {"name": str(document.get("name") or "file"), "url": url(document["file"]), "image": mime in PREVIEWED}


def sent_file_of(message: Message, url: Callable[[str], str]) -> dict[str, Any] | None:
    """The file a visitor sent (uploads.py: kept under the message's own key), as the page shows it."""
    ref = message.attachments[0].provider_ref if message.attachments and message.channel == "webchat" else None
    if ref != f"{message.id}:0":
        return None
    attachment = message.attachments[0]
    return {"name": attachment.name or "file", "url": url(ref), "image": attachment.mime_type in PREVIEWED}


def message_frame(message: Message, url: Callable[[str], str]) -> dict[str, Any]:
    return {
        "type": "message",
        "message_id": message.id,
        "thread_id": message.thread_id,
        "direction": str(message.direction),
        "sender": message.sender.get("kind", "customer"),
        "agent": message.sender.get("name") if message.sender.get("kind") == "agent" else None,
        "text": message.text,
        "options": message.meta.get("options", []),
        "created_at": message.created_at.isoformat(),
        "client_id": (message.external_id or "").partition(":")[2] or None,
        "file": file_of(message.meta, url) or sent_file_of(message, url),
    }


def outbound_frame(outbound: Outbound, text: str, url: Callable[[str], str]) -> dict[str, Any]:
    return {
        "type": "message",
        "message_id": outbound.message_id,
        "thread_id": outbound.thread_id,
        "direction": "out",
        "sender": outbound.meta.get("sender_kind", "bot"),
        "agent": outbound.meta.get("sender_name") if outbound.meta.get("sender_kind") == "agent" else None,
        "text": text,
        "options": list(outbound.options),
        "file": file_of(outbound.meta, url),
    }
