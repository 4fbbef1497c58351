"""The channels an install can serve: one line each, name -> the card its package defines.

Adding a channel is one package under ``bot/handlers/`` (see ``docs/development.md``) and one line
here. Order matters: it is the order of the settings sections and of ``enabled_channels``.
"""

from __future__ import annotations

from typing import Any

from bot.handlers import email, sms, telegram, voice, webchat, whatsapp
from bot.handlers.kit.card import Channel

CHANNELS: dict[str, Channel] = {
    "webchat": webchat.CHANNEL,
    "sms": sms.CHANNEL,
    "voice": voice.CHANNEL,
    "email": email.CHANNEL,
    "telegram": telegram.CHANNEL,
    "whatsapp": whatsapp.CHANNEL,
}


def sections() -> dict[str, type[Any]]:
    """Every channel's settings sections, in the registry's order (a shared one, such as
    ``[twilio]``, once)."""
    return {name: kind for channel in CHANNELS.values() for name, kind in channel.sections.items()}
