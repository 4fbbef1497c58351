"""The Twilio account section (``[twilio]``) that SMS and voice share."""

from __future__ import annotations

from dataclasses import dataclass

from bot.setting_fields import between, setting, url


@dataclass(frozen=True)
class TwilioSettings:
    account_sid: str = setting("", doc="Twilio Account SID (AC...): SMS and calls need it")
    auth_token: str = setting("", doc="Twilio Auth Token: signs webhooks, authenticates sends")
    api_base: str = setting(
        "", check=url, doc="Twilio REST API base URL; empty: Twilio's own (tests point it at a fake)"
    )
    timeout: float = setting(15.0, check=between(1, 120), doc="seconds one Twilio API call may take")
