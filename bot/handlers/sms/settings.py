"""The SMS settings section (``[sms]``; the Twilio account is ``[twilio]``) and when SMS is on."""

from __future__ import annotations

from dataclasses import dataclass

from bot.handlers.kit.card import SendLimits, SettingsSections
from bot.handlers.kit.twilio_settings import TwilioSettings
from bot.setting_fields import between, one_of, setting


@dataclass(frozen=True)
class SmsSettings:
    gateway: str = setting(
        "twilio", check=one_of("twilio"), doc="SMS provider module (see bot/handlers/sms/adapter.py)"
    )
    from_number: str = setting("", doc="our number in E.164 (+15551234567); enables SMS with twilio.account_sid")
    messaging_service_sid: str = setting("", doc="Twilio Messaging Service (MG...) to send from instead of from_number")
    max_segments: int = setting(
        10, check=between(1, 10), doc="most SMS segments one sent text may use; longer replies are split"
    )
    max_download_bytes: int = setting(
        5_242_880, check=between(1, 100_000_000), doc="largest MMS file of a customer's fetched from the provider"
    )
    help_reply: str = setting("", doc="our answer to HELP; empty: leave it to the provider's keyword handling")
    start_reply: str = setting("", doc="our answer to START; empty: leave it to the provider")
    messages_per_second: float = setting(
        1.0,
        check=between(0.01, 10000),
        doc="messages a second campaigns start on SMS at most: the sender's rate at Twilio (a long code: 1)",
    )
    for_accounts: bool = setting(
        False,
        doc="serve accounts' own Twilio numbers (SMS and calls inboxes) even when the install has no number of its own",
    )


def own_line(settings: SettingsSections) -> bool:
    """Whether the install has a Twilio number of its own: an account and a number (or messaging
    service) to send from."""
    twilio, sms = settings.section(TwilioSettings), settings.section(SmsSettings)
    return bool(twilio.account_sid and twilio.auth_token and (sms.from_number or sms.messaging_service_sid))


def enabled(settings: SettingsSections) -> bool:
    """Whether this install serves SMS (and so may have Twilio-number inboxes): a number of its own,
    or accounts with numbers of their own (``sms.for_accounts``)."""
    return own_line(settings) or settings.section(SmsSettings).for_accounts


def send_limits(settings: SettingsSections) -> SendLimits:
    """Twilio queues what a sender is given beyond its rate (and fails it after hours): campaigns keep to it."""
    return SendLimits(per_second=settings.section(SmsSettings).messages_per_second)
