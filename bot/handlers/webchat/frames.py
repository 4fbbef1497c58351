"""The web chat's message frames as the page receives them: a stored message (the welcome's
history) and a reply on its way out."""

from __future__ import annotations

from typing import Any

from conversations.thread_models import Message
from conversations.traffic import Outbound


def message_frame(message: Message) -> dict[str, Any]:
    return {
        "type": "message",
        "message_id": message.id,
        "thread_id": message.thread_id,
        "direction": str(message.direction),
        "sender": message.sender.get("kind", "customer"),
        "text": message.text,
        "options": message.meta.get("options", []),
        "created_at": message.created_at.isoformat(),
        "client_id": (message.external_id or "").partition(":")[2] or None,
    }


def outbound_frame(outbound: Outbound, text: str) -> dict[str, Any]:
    return {
        "type": "message",
        "message_id": outbound.message_id,
        "thread_id": outbound.thread_id,
        "direction": "out",
        "sender": outbound.meta.get("sender_kind", "bot"),
        "text": text,
        "options": list(outbound.options),
    }
