"""The Telegram channel, through our small Bot API client (``telegram_botapi``; why not aiogram: see
there) with a configurable API server, so tests point it at a local fake.

Inbound by webhook (``POST /webhooks/telegram``, the ``X-Telegram-Bot-Api-Secret-Token`` header
compared in constant time) or by long polling (``getUpdates``, see ``polling``).
Several accounts: ``/webhooks/telegram`` serves the account of ``account.id`` with the
``[telegram]`` settings; ``/webhooks/telegram/{account_id}`` serves any account whose document in
the store has ``channels.telegram`` (``token``, ``webhook_secret``, optionally ``api_base``: one of
the hosts the operator allows, or nothing is sent — see ``egress_guards``). Every bot's requests go
through the Telegram channel's egress guard (the client's aiohttp session is the guard's).

Outbound: text (with a reply keyboard for options, or inline buttons when the reply asks for
them), documents by URL or file id; 429 ``retry_after`` goes back to the outbox; sends to one chat
are paced about a second apart.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Coroutine, Mapping
from contextlib import aclosing
from typing import TYPE_CHECKING, Any

from aiohttp import ClientError, web

from bot.handlers.kit.accounts import PerAccount
from bot.handlers.kit.egress import Egress, refusal, url_rule
from bot.handlers.kit.inboxes import file_of, in_inbox
from bot.handlers.kit.media import AttachmentUnavailable, read_capped, served_type
from bot.handlers.kit.pacing import ChatPacer
from bot.handlers.kit.payload import Payload
from bot.handlers.kit.protocol import (
    BaseAdapter,
    Capabilities,
    ChannelContext,
    MalformedPayload,
    PermanentSendError,
    RetryableSendError,
    VerificationError,
)
from bot.handlers.kit.signatures import same_secret
from bot.handlers.kit.webhook import receive_webhook
from bot.handlers.telegram.botapi import BotAPI, BotAPIError, BotAPIUnreachable, TelegramBot
from bot.handlers.telegram.settings import TelegramSettings
from bot.handlers.telegram.updates import parse_update
from bot.logs import log_event
from bot.setting_fields import SettingsError
from conversations.traffic import Inbound, Outbound, ProviderEvent

if TYPE_CHECKING:
    from conversations.repositories import Repositories

log = logging.getLogger("omnirouter.handlers.telegram")

CAPTION_LIMIT = 1024


def make_bot(token: str, api_base: str, egress: Egress, timeout: float = 60.0) -> BotAPI:
    """A Bot API client talking to ``api_base`` (Telegram's, a local Bot API server, a fake)."""
    return BotAPI(token, api_base, egress, timeout=timeout)


class TelegramAdapter(BaseAdapter):
    name = "telegram"
    # the Bot API takes uploads of up to 50 MB
    capabilities = Capabilities(buttons=True, media=True, files=True, max_text_length=4096, max_file_bytes=50_000_000)

    def __init__(self, context: ChannelContext) -> None:
        self.settings = context.settings.section(TelegramSettings)
        self.account_id = context.account_id
        self._egress = context.egress.telegram
        self._store: Repositories | None = None  # set by start(): agents' files are read from it
        if self.settings.token and self.settings.mode == "webhook" and not self.settings.webhook_secret:
            raise SettingsError(
                "telegram.webhook_secret must be set in webhook mode (any 1-256 of A-Z a-z 0-9 _ -); "
                'or set telegram.mode = "polling"'
            )
        # no token: only other accounts' bots (telegram.for_accounts)
        default = (
            {"token": self.settings.token, "webhook_secret": self.settings.webhook_secret}
            if self.settings.token
            else None
        )
        self.bots: PerAccount[TelegramBot] = PerAccount(self.name, context.account_id, default, self._build)
        self._pacer = ChatPacer(self.settings.pacing)
        self._answers: set[asyncio.Task[Any]] = set()

    def _build(self, account_id: str, config: Mapping[str, Any]) -> TelegramBot:
        token, secret = config.get("token"), config.get("webhook_secret") or ""
        polling = self.settings.mode == "polling" and account_id == self.account_id
        if not isinstance(token, str) or not token or not isinstance(secret, str) or not (secret or polling):
            raise SettingsError(f"account {account_id}: channels.telegram needs a token and a webhook_secret")
        api_base, why = self._egress.account_api_base(account_id, config)
        return TelegramBot(account_id, make_bot(token, api_base, self._egress), secret, why)

    async def start(self, store: Repositories) -> None:
        self.bots.attach(store)
        self._store = store

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/webhooks/telegram", self.webhook),
            web.post("/webhooks/telegram/{account_id}", self.webhook),
            web.post("/webhooks/telegram/{account_id}/{inbox_id}", self.webhook),  # an extra inbox's bot
        ]

    def background(self) -> list[Coroutine[Any, Any, None]]:
        if self.settings.mode != "polling" or not self.settings.token:
            return []
        from bot.handlers.telegram.polling import Poller

        return [Poller(self, self.sink).run()]

    async def close(self) -> None:
        for task in list(self._answers):
            task.cancel()
        await self.bots.close_all(lambda tb: tb.bot.close())

    # --- inbound -------------------------------------------------------------------------

    async def webhook(self, request: web.Request) -> web.Response:
        inbox_id = request.match_info.get("inbox_id")
        bot = await self.bots.for_webhook(request.match_info.get("account_id", self.account_id), inbox_id)
        hook = _AccountHook(self, bot, inbox_id)
        response = await receive_webhook(request, hook, self.sink)
        self.answer_button_presses(bot, hook.items)
        return response

    def parse(self, body: bytes, headers: Mapping[str, str]) -> list[ProviderEvent]:
        """One update of the configured account (webhook bodies carry exactly one)."""
        return parse_update(Payload.parse(body), self.account_id)

    def answer_button_presses(self, bot: TelegramBot, items: list[ProviderEvent]) -> None:
        """Stop the spinner on pressed inline buttons (after the press is recorded)."""
        for item in items:
            query_id = item.meta.get("callback_query_id") if isinstance(item, Inbound) else None
            if query_id:
                task = asyncio.create_task(self._answer(bot, str(query_id)))
                self._answers.add(task)
                task.add_done_callback(self._answers.discard)

    async def _answer(self, bot: TelegramBot, query_id: str) -> None:
        if bot.refused:
            return
        try:
            await bot.bot.answer_callback_query(query_id)
        except (BotAPIError, BotAPIUnreachable) as exc:  # cosmetic: the press is recorded either way
            log_event(log, "telegram.answer_failed", logging.WARNING, error=type(exc).__name__)

    # --- outbound ------------------------------------------------------------------------

    async def send(self, outbound: Outbound) -> str:
        bot = await self.bots.for_send(outbound.account_id, outbound.inbox_id)
        if bot.refused:
            raise PermanentSendError(bot.refused)
        try:
            chat_id = int(outbound.to.address)
        except ValueError:
            raise PermanentSendError(f"{outbound.to.address!r} is not a Telegram chat id") from None
        chat = (outbound.inbox_id or outbound.account_id, chat_id)  # Telegram's limits are per bot
        await self._pacer.slot(chat)
        try:
            sent = await self._deliver(bot.bot, chat_id, outbound)
            self._pacer.delivered(chat)
        except BotAPIError as exc:
            if exc.transient:  # flood control (with retry_after) or Telegram's own trouble
                raise RetryableSendError(
                    f"telegram {exc.code}: {exc.description}", retry_after=exc.retry_after
                ) from None
            # bad request, blocked by the user, chat gone, bad token
            raise PermanentSendError(f"telegram {exc.code}: {exc.description}") from None
        except BotAPIUnreachable as exc:
            if refused := refusal(exc):
                raise PermanentSendError(f"telegram: {refused}; nothing sent") from None
            raise RetryableSendError(f"telegram: {exc}") from None
        sent_id = f"{chat_id}:{sent.integer('message_id')}"
        return sent_id if outbound.inbox_id is None else f"{outbound.inbox_id}/{sent_id}"  # ids count per bot

    async def typing(self, account_id: str, address: str, inbox_id: str | None = None) -> bool:
        """Telegram's chat action while an agent writes; a failure is only logged (it is a courtesy)."""
        bot = await self.bots.quietly(account_id, inbox_id)
        if bot is None or bot.refused or not address.lstrip("-").isdigit():
            return False
        try:
            await bot.bot.send_chat_action(int(address), "typing")
        except (BotAPIError, BotAPIUnreachable) as exc:
            log_event(log, "telegram.typing_failed", logging.INFO, error=type(exc).__name__)
            return False
        return True

    async def _deliver(self, bot: BotAPI, chat_id: int, outbound: Outbound) -> Payload:
        text = self.render_text(outbound)
        markup = _markup(outbound)
        document = outbound.meta.get("document")
        if isinstance(document, Mapping) and isinstance(document.get("file"), str):
            return await self._upload(bot, chat_id, outbound.account_id, document["file"], text, markup)
        if isinstance(document, Mapping):
            source = _document_source(document)
            caption = text if len(text) <= CAPTION_LIMIT else text[: CAPTION_LIMIT - 1] + "…"
            return await bot.send_document(chat_id, source, caption=caption or None, reply_markup=markup)
        return await bot.send_message(chat_id, text, reply_markup=markup)

    async def _upload(
        self, bot: BotAPI, chat_id: int, account_id: str, key: str, text: str, markup: Mapping[str, Any] | None
    ) -> Payload:
        """An agent's file from the store, uploaded: a photo when it is an image, else a document."""
        found = await self._store.files.read_upload(account_id, key) if self._store is not None else None
        if found is None:
            raise PermanentSendError("the file is no longer in the store (erased?)")
        kept, data = found
        _, photo = served_type(kept.content_type, data)
        caption = text if len(text) <= CAPTION_LIMIT else text[: CAPTION_LIMIT - 1] + "…"
        return await bot.send_file(
            chat_id, kept.name, data, kept.content_type, photo=photo, caption=caption or None, reply_markup=markup
        )

    # --- attachments ---------------------------------------------------------------------

    async def fetch_attachment(self, account_id: str, ref: str) -> bytes:
        """The bytes of a file the customer sent, by its file id, at most ``max_download_bytes``."""
        inbox_id, ref = file_of(ref)
        bot = await self.bots.quietly(account_id, inbox_id)
        if bot is None:
            raise AttachmentUnavailable(f"no Telegram bot is configured for account {account_id}")
        if bot.refused:
            raise AttachmentUnavailable(bot.refused)
        try:
            file = await bot.bot.get_file(ref)
            path = file.opt_string("file_path")
            if not path:
                raise AttachmentUnavailable("Telegram gave no path for this file")
            async with aclosing(bot.bot.download(path, timeout=60)) as chunks:  # a refused file is let go at once
                return await read_capped(chunks, self.settings.max_download_bytes, file.opt_integer("file_size"))
        except BotAPIError as exc:
            raise AttachmentUnavailable(f"telegram {exc.code}: {exc.description}") from None
        except BotAPIUnreachable as exc:
            raise AttachmentUnavailable(f"telegram: {refusal(exc) or exc}") from None
        except MalformedPayload as exc:
            raise AttachmentUnavailable(f"telegram getFile: {exc}") from None
        except (ClientError, TimeoutError) as exc:  # the download itself
            raise AttachmentUnavailable(f"telegram download: {refusal(exc) or type(exc).__name__}") from None


class _AccountHook:
    """The webhook view of one bot: its secret, its account id, the inbox it is."""

    def __init__(self, adapter: TelegramAdapter, bot: TelegramBot, inbox_id: str | None) -> None:
        self.name = adapter.name
        self._bot = bot
        self._inbox_id = inbox_id
        self.items: list[ProviderEvent] = []

    async def verify(self, request: web.Request, body: bytes) -> None:
        given = request.headers.get("X-Telegram-Bot-Api-Secret-Token", "")
        if not given or not same_secret(given, self._bot.webhook_secret):
            raise VerificationError("missing or wrong X-Telegram-Bot-Api-Secret-Token")

    def parse(self, body: bytes, headers: Mapping[str, str]) -> list[ProviderEvent]:
        # a message id counts up per chat of each bot: an extra inbox's are scoped to it
        self.items = in_inbox(parse_update(Payload.parse(body), self._bot.account_id), self._inbox_id, scope_ids=True)
        return self.items


def _markup(outbound: Outbound) -> dict[str, Any] | None:
    """Options as a one-time reply keyboard (a tap sends the option as a message), or as inline
    buttons (a tap is a callback query) when the reply's meta says ``"buttons": "inline"``."""
    if not outbound.options:
        return None
    if outbound.meta.get("buttons") == "inline":
        return {
            "inline_keyboard": [
                [{"text": option, "callback_data": _fit_bytes(option, 64)}] for option in outbound.options
            ]
        }
    return {
        "keyboard": [[{"text": option}] for option in outbound.options],
        "resize_keyboard": True,
        "one_time_keyboard": True,
    }


def _fit_bytes(text: str, limit: int) -> str:
    return text.encode()[:limit].decode(errors="ignore")


_FILE_ID = re.compile(r"[A-Za-z0-9_-]+")


def _document_source(document: Mapping[str, Any]) -> str:
    """What the Bot API is given for a document sent by address: Telegram's file id, or an http(s)
    URL Telegram fetches. A local Bot API server (``telegram.api_base``) would read a ``file://``
    address as a file on its host and upload it, so nothing else is sent."""
    file_id, url = document.get("file_id"), document.get("url")
    if isinstance(file_id, str) and file_id:
        if not _FILE_ID.fullmatch(file_id):
            raise PermanentSendError("a document's file_id must be Telegram's file id")
        return file_id
    if isinstance(url, str) and url:
        if not url.startswith(("https://", "http://")) or url_rule(url) is None:
            raise PermanentSendError("a document's url must be an http(s) URL with a host")
        return url
    raise PermanentSendError("a document needs a url or a file_id")
