"""The voice settings section (``[voice]``; the Twilio account is ``[twilio]``) and when calls are recorded."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from bot.handlers.kit.twilio_settings import TwilioSettings
from bot.setting_fields import setting


@dataclass(frozen=True)
class VoiceSettings:
    enabled: bool = setting(False, doc="accept Twilio Voice status callbacks at /webhooks/voice (needs [twilio])")


class Sections(Protocol):
    """The settings sections ``enabled`` reads (``bot.settings.Settings`` has them)."""

    @property
    def twilio(self) -> TwilioSettings: ...

    @property
    def voice(self) -> VoiceSettings: ...


def enabled(settings: Sections) -> bool:
    """Whether this install serves calls: voice switched on with a Twilio auth token to check callbacks."""
    return bool(settings.twilio.auth_token and settings.voice.enabled)
