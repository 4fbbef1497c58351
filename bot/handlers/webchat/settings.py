"""The web chat's settings section (``[webchat]``); the web chat is always on."""

from __future__ import annotations

from dataclasses import dataclass

from bot.handlers.kit.card import SettingsSections
from bot.setting_fields import between, setting


@dataclass(frozen=True)
class WebchatSettings:
    max_text_length: int = setting(4096, check=between(1, 100_000), doc="longest web chat message, characters")
    secret: str = setting("", doc="key that signs visitor tokens; empty: one generated and kept sealed in the store")
    max_file_mb: float = setting(
        10.0, check=between(0.01, 1000), doc="largest file a visitor may send, MB (images, PDF, text, Office documents)"
    )
    visitor_token_days: float = setting(
        90.0,
        check=between(1, 3650),
        doc="a visitor token unused this long expires (the browser starts as a new visitor); renewed on use",
    )


def enabled(settings: SettingsSections) -> bool:
    """Whether this install serves the web chat: always."""
    return True
