"""Telegram's settings section (``[telegram]``) and when the channel is on."""

from __future__ import annotations

from dataclasses import dataclass

from bot.handlers.kit.card import SettingsSections
from bot.setting_fields import between, one_of, setting, url


def _secret_token(value: str) -> str | None:
    if (value and not all(c.isalnum() or c in "_-" for c in value)) or len(value) > 256:
        return "must be 1-256 characters of A-Z, a-z, 0-9, _ and - (Telegram's rule)"
    return None


@dataclass(frozen=True)
class TelegramSettings:
    token: str = setting("", doc="bot token from @BotFather; empty: Telegram is off")
    webhook_secret: str = setting(
        "", check=_secret_token, doc="secret Telegram sends in X-Telegram-Bot-Api-Secret-Token (webhook mode)"
    )
    mode: str = setting(
        "webhook", check=one_of("webhook", "polling"), doc="receive updates by `webhook` or `polling` (getUpdates)"
    )
    api_base: str = setting("https://api.telegram.org", check=url, doc="Bot API server (a local fake in tests)")
    poll_timeout: int = setting(25, check=between(0, 50), doc="long-poll wait of getUpdates, seconds")
    pacing: float = setting(1.0, check=between(0, 60), doc="least time between two messages to one chat, seconds")
    max_download_bytes: int = setting(
        20_971_520, check=between(1, 2_000_000_000), doc="largest attachment downloaded by file id"
    )
    for_accounts: bool = setting(False, doc="serve Telegram for accounts with their own bot even when token is empty")


def enabled(settings: SettingsSections) -> bool:
    """Whether this install serves Telegram: a bot token, or accounts with bots of their own."""
    own = settings.section(TelegramSettings)
    return bool(own.token or own.for_accounts)
