"""One bot's settings tried against the Bot API, for the console: who the token belongs to
(``getMe``) and pointing the bot's webhook at its inbox (``setWebhook``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from bot.handlers.kit.egress import refusal
from bot.handlers.kit.egress_guards import ChannelEgress
from bot.handlers.kit.probe import ProbeFailed
from bot.handlers.kit.protocol import MalformedPayload
from bot.handlers.telegram.botapi import BotAPI, BotAPIError, BotAPIUnreachable
from bot.handlers.telegram.updates import ALLOWED_UPDATES

TIMEOUT = 15.0


def _bot(guard: ChannelEgress, account_id: str, config: Mapping[str, Any]) -> BotAPI:
    api_base, refused = guard.account_api_base(account_id, config)
    if refused:
        raise ProbeFailed("refused", refused)
    return BotAPI(str(config.get("token") or ""), api_base, guard, timeout=TIMEOUT)


async def bot_username(guard: ChannelEgress, account_id: str, config: Mapping[str, Any]) -> str:
    """``@username`` of the bot whose token ``config`` holds; :class:`ProbeFailed` otherwise."""
    async with _asking(guard, account_id, config) as bot:
        me = await bot.get_me()
        return f"@{me.opt_string('username') or me.opt_string('first_name') or '?'}"


async def point_webhook(guard: ChannelEgress, account_id: str, config: Mapping[str, Any], url: str) -> None:
    """Tell Telegram to deliver the bot's updates to ``url`` with the inbox's webhook secret."""
    async with _asking(guard, account_id, config) as bot:
        await bot.set_webhook(
            url,
            secret_token=str(config.get("webhook_secret") or ""),
            allowed_updates=list(ALLOWED_UPDATES),
            drop_pending_updates=False,
        )


@asynccontextmanager
async def _asking(guard: ChannelEgress, account_id: str, config: Mapping[str, Any]) -> AsyncIterator[BotAPI]:
    """The bot of ``config`` for one question, closed after; what Telegram refused, or why it was
    not reached, as :class:`ProbeFailed`."""
    bot = _bot(guard, account_id, config)
    try:
        yield bot
    except BotAPIError as exc:
        raise ProbeFailed("provider", f"{exc.code} {exc.description}") from None
    except (BotAPIUnreachable, MalformedPayload) as exc:
        raise ProbeFailed("unreachable", _unreachable(exc)) from None
    finally:
        await bot.close()


def _unreachable(exc: Exception) -> str:
    refused = refusal(exc)
    return str(refused) if refused is not None else str(exc)[:300]
