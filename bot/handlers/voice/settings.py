"""The voice settings section (``[voice]``; the Twilio account is ``[twilio]``) and when calls are recorded."""

from __future__ import annotations

from dataclasses import dataclass

from bot.handlers.kit.card import SettingsSections
from bot.handlers.kit.twilio_settings import TwilioSettings
from bot.handlers.sms import settings as sms
from bot.setting_fields import setting


@dataclass(frozen=True)
class VoiceSettings:
    enabled: bool = setting(
        False,
        doc="record calls to the install's own number (Twilio Voice status callbacks at /webhooks/voice; needs [twilio])",
    )


def own_calls(settings: SettingsSections) -> bool:
    """Whether the install records calls to its own number: voice switched on with a Twilio auth
    token to check callbacks."""
    return bool(settings.section(TwilioSettings).auth_token and settings.section(VoiceSettings).enabled)


def enabled(settings: SettingsSections) -> bool:
    """Whether this install serves ``/webhooks/voice``: calls to its own number, or Twilio-number
    inboxes may exist (SMS is served), each of which takes calls when its ``serves`` says so."""
    return own_calls(settings) or sms.enabled(settings)
