"""Telegram (Bot API through aiogram): webhook or long polling, per-account bots."""
