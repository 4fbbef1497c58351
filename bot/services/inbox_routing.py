"""What an inbox handles otherwise than its account (``Inbox.routing``, read by
``bot/router/routing.py``): whether the bot answers, the team its conversations are queued to,
its business hours and time zone, and its out-of-hours reply. A setting left out (or ``null``)
is the account's."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from zoneinfo import ZoneInfoNotFoundError

from bot.business_hours import BusinessHours

_TEXT = r"^[^\x00-\x08\x0b-\x1f]*$"  # no control characters but line breaks
INBOX_ROUTING: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "description": "what the inbox handles otherwise than its account; null or left out: the account's",
    "properties": {
        "bot": {"type": ["boolean", "null"], "description": "false: its conversations go straight to the agents"},
        "team": {"type": ["string", "null"], "maxLength": 64, "pattern": _TEXT},
        "business_hours": {"type": ["string", "null"], "maxLength": 400, "pattern": _TEXT},
        "timezone": {"type": ["string", "null"], "maxLength": 64, "pattern": r"^[A-Za-z0-9_+/-]*$"},
        "out_of_hours_reply": {"type": ["string", "null"], "maxLength": 1000, "pattern": _TEXT},
    },
}


def routing_problem(values: Mapping[str, Any], timezone: str) -> str | None:
    """Why ``values`` cannot be an inbox's routing (hours that do not read, an unknown time
    zone), in one line; ``None`` when they can. ``timezone``: the account's, for hours alone."""
    hours, zone = values.get("business_hours"), values.get("timezone")
    if not hours and not zone:
        return None
    try:
        BusinessHours.parse(hours or "", zone or timezone)
    except ZoneInfoNotFoundError:
        return f"routing.timezone: {zone!r} is not a time zone like Europe/Riga"
    except (ValueError, KeyError) as exc:
        return f"routing.business_hours: {exc}"
    return None


def routing_changes(values: Mapping[str, Any]) -> dict[str, Any]:
    """The store fields that set ``values`` over an inbox's routing (others stay as they are)."""
    return {f"routing.{key}": value for key, value in values.items()}
