"""WhatsApp's settings section (``[whatsapp]``) and when the channel is on."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bot.handlers.kit.card import SendLimits, SettingsSections
from bot.setting_fields import between, setting, url


def _templates(value: dict[str, Any]) -> str | None:
    for name, spec in value.items():
        if not isinstance(spec, dict) or not isinstance(spec.get("language"), str):
            return f'template {name!r} needs a language, e.g. language = "en_US"'
        params = spec.get("parameters", [])
        if not isinstance(params, list) or not all(isinstance(p, str) for p in params):
            return f"template {name!r}: parameters must be a list of names"
    return None


@dataclass(frozen=True)
class WhatsappSettings:
    phone_number_id: str = setting("", doc="Cloud API phone number id; empty: WhatsApp is off")
    access_token: str = setting("", doc="system-user access token for the Graph API")
    app_secret: str = setting("", doc="app secret: checks X-Hub-Signature-256")
    verify_token: str = setting("", doc="token Meta echoes when verifying the webhook URL")
    api_base: str = setting("https://graph.facebook.com", check=url, doc="Graph API server (a local fake in tests)")
    api_version: str = setting("23.0", doc="Graph API version")
    max_download_bytes: int = setting(
        16_777_216, check=between(1, 2_000_000_000), doc="largest attachment downloaded by media id"
    )
    templates: dict[str, Any] | None = setting(
        None, check=_templates, doc="message templates for use outside the 24-hour window (see WhatsApp)"
    )
    stop_reply: str = setting(
        "", doc="our answer to STOP (a customer opting out of campaigns, see Campaigns); empty: none"
    )
    start_reply: str = setting("", doc="our answer to START (a customer opting in again); empty: none")
    messages_per_second: float = setting(
        80.0, check=between(0.01, 10000), doc="messages a second campaigns start on WhatsApp at most (Cloud API: 80)"
    )
    daily_unique_limit: int = setting(
        250,
        check=between(0, 100_000_000),
        doc="messaging tier: distinct customers campaigns write to first in a rolling 24 hours (a new business starts at 250); 0: unlimited",
    )
    for_accounts: bool = setting(
        False, doc="serve WhatsApp for accounts with their own number even when phone_number_id is empty"
    )


def enabled(settings: SettingsSections) -> bool:
    """Whether this install serves WhatsApp: a phone number id, or accounts with numbers of their own."""
    own = settings.section(WhatsappSettings)
    return bool(own.phone_number_id or own.for_accounts)


def send_limits(settings: SettingsSections) -> SendLimits:
    """The number's throughput and the business's messaging tier, as configured."""
    own = settings.section(WhatsappSettings)
    return SendLimits(per_second=own.messages_per_second, daily_unique=own.daily_unique_limit)
