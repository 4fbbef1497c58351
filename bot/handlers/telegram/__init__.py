"""Telegram (Bot API through aiogram): webhook or long polling, per-account bots."""

from bot.handlers.kit.card import Channel
from bot.handlers.telegram.settings import TelegramSettings, enabled

CHANNEL = Channel("telegram", "bot.handlers.telegram.adapter:TelegramAdapter", {"telegram": TelegramSettings}, enabled)
