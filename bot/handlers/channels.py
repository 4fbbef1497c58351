"""Which channels an install serves, and building their adapters (from the registry's cards)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from bot.handlers.registry import CHANNELS

if TYPE_CHECKING:
    from bot.handlers.kit.card import SendLimits
    from bot.handlers.kit.protocol import ChannelAdapter, ChannelContext
    from bot.settings import Settings


def build_adapter(name: str, context: ChannelContext) -> ChannelAdapter:
    """Import and construct the adapter registered under ``name``."""
    module_name, _, class_name = CHANNELS[name].adapter.partition(":")
    kind = getattr(importlib.import_module(module_name), class_name)
    adapter: ChannelAdapter = kind(context)
    return adapter


def enabled_channels(settings: Settings) -> list[str]:
    """The channels this install serves: the web chat always, others once configured."""
    return [name for name, channel in CHANNELS.items() if channel.enabled(settings)]


def send_limits(settings: Settings) -> dict[str, SendLimits]:
    """Each channel's sending limits at its provider, as this install's settings give them."""
    return {name: channel.send_limits(settings) for name, channel in CHANNELS.items()}
