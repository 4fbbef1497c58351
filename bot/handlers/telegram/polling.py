"""Telegram long polling (``getUpdates``) for installs without a public URL.

The offset given to ``getUpdates`` confirms every update before it to Telegram, which then
forgets them. It moves past an update only once that update is recorded (or known to be one we
ignore), so a crash or a store outage makes Telegram deliver it again, and the inbound dedup key
stores it once. One process per bot may poll: Telegram answers a second one with 409 Conflict.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Protocol

from bot.handlers.kit.payload import Payload
from bot.handlers.kit.protocol import MalformedPayload, UnsupportedEvent
from bot.handlers.telegram.botapi import BotAPIError, BotAPIUnreachable, TelegramBot
from bot.handlers.telegram.updates import ALLOWED_UPDATES, parse_update
from bot.logs import log_event
from bot.tasks import raise_if_cancelled
from conversations.errors import StoreClosed, StoreUnavailable

if TYPE_CHECKING:
    from bot.handlers.kit.accounts import PerAccount
    from bot.handlers.kit.sink import InboundSink
    from bot.handlers.telegram.settings import TelegramSettings
    from conversations.traffic import ProviderEvent

log = logging.getLogger("omnirouter.handlers.telegram")
# what a call can fail with and be tried again: Telegram's errors, and no answer from it (the
# network, or a proxy's 502 page instead of its JSON)
_API_TROUBLE = (BotAPIError, BotAPIUnreachable)
_CONFLICT = 409  # another getUpdates, or a webhook is set


class PolledAdapter(Protocol):
    """What the poller needs of the Telegram adapter (which starts it)."""

    account_id: str
    settings: TelegramSettings
    bots: PerAccount[TelegramBot]

    def answer_button_presses(self, bot: TelegramBot, items: list[ProviderEvent]) -> None: ...


class Poller:
    """Fetches and records the default account's updates until cancelled."""

    def __init__(self, adapter: PolledAdapter, sink: InboundSink, pause: float = 1.0) -> None:
        self._adapter = adapter
        self._sink = sink
        self._pause = pause
        self.offset: int | None = None

    async def run(self) -> None:
        bot = await self._adapter.bots.get(self._adapter.account_id)
        assert bot is not None, "the default account's bot is built from the settings"
        while not await self._drop_webhook(bot):  # noqa: ASYNC110 (a retry with a pause, no event to wait for)
            await asyncio.sleep(self._pause * 5)
        log_event(log, "telegram.polling", account=bot.account_id)
        while True:
            raise_if_cancelled()
            try:
                await self.poll_once(bot)
            except StoreClosed:  # the process is stopping
                return
            except Exception:  # nothing restarts this task: the update it could not record is fetched again
                log.exception("telegram.polling_error", extra={"omnirouter_fields": {"offset": self.offset}})
                await asyncio.sleep(self._pause * 5)

    async def _drop_webhook(self, bot: TelegramBot) -> bool:
        """getUpdates is refused while a webhook is set; pending updates are kept."""
        try:
            await bot.bot.delete_webhook(drop_pending_updates=False)
            return True
        except _API_TROUBLE as exc:
            log_event(log, "telegram.delete_webhook_failed", logging.WARNING, error=type(exc).__name__)
            return False

    async def poll_once(self, bot: TelegramBot) -> int:
        """One ``getUpdates`` round; returns how many updates were taken care of."""
        timeout = self._adapter.settings.poll_timeout
        try:
            updates = await bot.bot.get_updates(self.offset, timeout, list(ALLOWED_UPDATES))
        except BotAPIError as exc:
            if exc.retry_after is not None:
                await asyncio.sleep(exc.retry_after)
            elif exc.code == _CONFLICT:
                log_event(
                    log,
                    "telegram.polling_conflict",
                    logging.ERROR,
                    hint="another process polls this bot, or a webhook is set",
                )
                await asyncio.sleep(self._pause * 5)
            else:
                log_event(log, "telegram.polling_failed", logging.WARNING, error=f"{exc.code}")
                await asyncio.sleep(self._pause)
            return 0
        except BotAPIUnreachable as exc:
            log_event(log, "telegram.polling_failed", logging.WARNING, error=type(exc).__name__)
            await asyncio.sleep(self._pause)
            return 0
        done = 0
        for update in updates:
            update_id = update.integer("update_id")  # checked by get_updates
            try:
                await self.record(bot, update)
            except StoreUnavailable:
                log_event(log, "telegram.polling_store_unavailable", logging.WARNING, update=update_id)
                await asyncio.sleep(self._pause)
                return done  # the offset stays: Telegram delivers this update again
            self.offset = update_id + 1
            done += 1
        return done

    async def record(self, bot: TelegramBot, update: Payload) -> None:
        try:
            items = parse_update(update, bot.account_id)
        except (UnsupportedEvent, MalformedPayload) as exc:
            log_event(log, "telegram.update_ignored", reason=str(exc)[:200])
            return
        await self._sink.record(items)
        self._adapter.answer_button_presses(bot, items)
