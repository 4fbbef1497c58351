"""The voice settings section (``[voice]``; the Twilio account is ``[twilio]``) and when calls are recorded."""

from __future__ import annotations

from dataclasses import dataclass

from bot.handlers.kit.card import SettingsSections
from bot.handlers.kit.twilio_settings import TwilioSettings
from bot.setting_fields import setting


@dataclass(frozen=True)
class VoiceSettings:
    enabled: bool = setting(False, doc="accept Twilio Voice status callbacks at /webhooks/voice (needs [twilio])")


def enabled(settings: SettingsSections) -> bool:
    """Whether this install serves calls: voice switched on with a Twilio auth token to check callbacks."""
    return bool(settings.section(TwilioSettings).auth_token and settings.section(VoiceSettings).enabled)
