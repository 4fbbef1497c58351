"""A small Bot API client: the calls the Telegram channel makes, over the egress guard's aiohttp session.

Why not aiogram: its ~300 pydantic models of the Bot API cost about 100 MB of resident memory and
5-10 s when imported as it is (measured in ``docs/channels/telegram.md``), which breaks the
router's memory budget, and making them lazy took patching pydantic. The channel needs a handful
of methods whose answers it reads through :class:`bot.handlers.kit.payload.Payload` (as it reads the
updates), so they are called here directly: parameters go as a form (objects such as keyboards as
JSON, as the Bot API documents), the answer is ``{"ok": true, "result": ...}`` or an error.

Errors: :class:`BotAPIError` when Telegram answered ``ok: false`` (``code``, ``description`` and,
for 429, ``retry_after``); :class:`BotAPIUnreachable` when there was no Bot API answer (the network
failed, the call timed out, the egress guard refused — :func:`bot.handlers.kit.egress.refusal` finds
it — or something else answered, such as a proxy's 502 page).
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

from bot.handlers.kit.egress import Egress
from bot.handlers.kit.payload import Payload, json_or_none

Upload = tuple[str, str, bytes, str]  # form field, file name, bytes, content type


class BotAPIError(Exception):
    """Telegram refused a call (``ok: false``): ``code`` is its ``error_code``."""

    def __init__(self, method: str, code: int, description: str, retry_after: float | None = None) -> None:
        super().__init__(description)
        self.method = method
        self.code = code
        self.description = description
        self.retry_after = retry_after

    @property
    def transient(self) -> bool:
        """Worth trying again: flood control (429) or Telegram's own trouble (5xx)."""
        return self.code == 429 or self.code >= 500


class BotAPIUnreachable(Exception):
    """No answer from the Bot API: a network failure, a timeout, a refusal, or a non-Bot API answer."""


class BotAPI:
    """One bot (its token) on one Bot API server (``api_base``: Telegram's, a local one, a fake)."""

    def __init__(self, token: str, api_base: str, egress: Egress, timeout: float = 60.0, limit: int = 100) -> None:
        self.token = token
        self._base = api_base.rstrip("/")
        self._egress = egress
        self._timeout = timeout
        self._limit = limit
        self._session: aiohttp.ClientSession | None = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = self._egress.session(limit=self._limit)
        return self._session

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()

    async def call(
        self, method: str, params: Mapping[str, Any], timeout: float | None = None, upload: Upload | None = None
    ) -> Any:
        """The ``result`` of ``method``; parameters that are ``None`` are left out; ``upload``
        (field, file name, bytes, content type) goes as a multipart file."""
        fields = {key: _form_value(value) for key, value in params.items() if value is not None}
        form: dict[str, str] | aiohttp.FormData = fields
        if upload is not None:
            form = aiohttp.FormData()
            for key, value in fields.items():
                form.add_field(key, value)
            field, name, data, content_type = upload
            form.add_field(field, data, filename=name, content_type=content_type)
        url = f"{self._base}/bot{self.token}/{method}"
        try:
            async with self._http().post(
                url, data=form, timeout=aiohttp.ClientTimeout(total=timeout or self._timeout)
            ) as response:
                body = await response.read()
                status = response.status
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise BotAPIUnreachable(f"{method}: {str(exc)[:200] or type(exc).__name__}") from exc
        return _result(method, status, body)

    async def download(self, file_path: str, timeout: float = 60.0) -> AsyncGenerator[bytes, None]:
        """The bytes of a file ``getFile`` named, as they arrive (close the generator to let it go early).
        Network failures are aiohttp's errors or ``TimeoutError``."""
        url = f"{self._base}/file/bot{self.token}/{file_path}"
        async with self._http().get(url, timeout=aiohttp.ClientTimeout(total=timeout)) as response:
            if response.status != 200:
                raise BotAPIError("file", response.status, f"the file server answered {response.status}")
            async for chunk in response.content.iter_any():
                yield chunk

    # --- the methods the channel uses ------------------------------------------------------

    async def send_message(self, chat_id: int, text: str, reply_markup: Mapping[str, Any] | None = None) -> Payload:
        return _message(
            await self.call("sendMessage", {"chat_id": chat_id, "text": text, "reply_markup": reply_markup})
        )

    async def send_document(
        self, chat_id: int, document: str, caption: str | None = None, reply_markup: Mapping[str, Any] | None = None
    ) -> Payload:
        """A document by URL or file id (uploads are not needed: replies link or forward files)."""
        return _message(
            await self.call(
                "sendDocument",
                {"chat_id": chat_id, "document": document, "caption": caption, "reply_markup": reply_markup},
            )
        )

    async def send_file(
        self,
        chat_id: int,
        name: str,
        data: bytes,
        content_type: str,
        *,
        photo: bool,
        caption: str | None = None,
        reply_markup: Mapping[str, Any] | None = None,
    ) -> Payload:
        """A file uploaded with the request: a photo (shown in the chat) or a document."""
        method, field = ("sendPhoto", "photo") if photo else ("sendDocument", "document")
        params = {"chat_id": chat_id, "caption": caption, "reply_markup": reply_markup}
        return _message(await self.call(method, params, timeout=120.0, upload=(field, name, data, content_type)))

    async def send_chat_action(self, chat_id: int, action: str = "typing") -> None:
        """ "typing…" in the chat for a few seconds (or until the next message)."""
        await self.call("sendChatAction", {"chat_id": chat_id, "action": action}, timeout=5.0)

    async def answer_callback_query(self, callback_query_id: str) -> None:
        await self.call("answerCallbackQuery", {"callback_query_id": callback_query_id})

    async def get_file(self, file_id: str) -> Payload:
        """The file's ``file_path`` (for :meth:`download`) and, if known, ``file_size``."""
        return _object("getFile", await self.call("getFile", {"file_id": file_id}))

    async def get_updates(self, offset: int | None, timeout: int, allowed_updates: list[str]) -> list[Payload]:
        """Updates after ``offset`` (which confirms those before it), waiting up to ``timeout`` s for one."""
        result = await self.call(
            "getUpdates",
            {"offset": offset, "timeout": timeout, "allowed_updates": allowed_updates},
            timeout=timeout + 10,
        )
        if not isinstance(result, list) or not all(
            isinstance(update, dict) and type(update.get("update_id")) is int for update in result
        ):
            raise BotAPIUnreachable("getUpdates: the answer is not a list of updates with their update_id")
        return [Payload(update, f"$.result[{n}]") for n, update in enumerate(result)]

    async def set_webhook(
        self, url: str, secret_token: str, allowed_updates: list[str], drop_pending_updates: bool
    ) -> None:
        await self.call(
            "setWebhook",
            {
                "url": url,
                "secret_token": secret_token,
                "allowed_updates": allowed_updates,
                "drop_pending_updates": drop_pending_updates,
            },
        )

    async def delete_webhook(self, drop_pending_updates: bool = False) -> None:
        await self.call("deleteWebhook", {"drop_pending_updates": drop_pending_updates})

    async def get_webhook_info(self) -> Payload:
        return _object("getWebhookInfo", await self.call("getWebhookInfo", {}))

    async def get_me(self) -> Payload:
        """The bot itself (``username``, ``first_name``): what proves a token works."""
        return _object("getMe", await self.call("getMe", {}))


def _form_value(value: Any) -> str:
    """A parameter as the Bot API reads form fields: strings as they are, everything else as JSON."""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _result(method: str, status: int, body: bytes) -> Any:
    answer = json_or_none(body)
    if not isinstance(answer, dict) or not isinstance(answer.get("ok"), bool):
        raise BotAPIUnreachable(f"{method}: HTTP {status} without a Bot API answer")
    if answer["ok"]:
        return answer.get("result")
    code = answer.get("error_code")
    parameters = answer.get("parameters")
    retry_after = parameters.get("retry_after") if isinstance(parameters, dict) else None
    raise BotAPIError(
        method,
        code if isinstance(code, int) else status,
        str(answer.get("description") or "")[:300],
        float(retry_after) if isinstance(retry_after, int | float) else None,
    )


def _object(method: str, result: Any) -> Payload:
    if not isinstance(result, dict):
        raise BotAPIUnreachable(f"{method}: the answer's result is not an object")
    return Payload(result, "$.result")


def _message(result: Any) -> Payload:
    message = _object("send", result)
    if not isinstance(message.raw.get("message_id"), int):  # what the channel keeps of a sent message
        raise BotAPIUnreachable("send: the answer names no message_id")
    return message


@dataclass
class TelegramBot:
    """One account's bot: its Bot API client and the secret its webhook calls carry."""

    account_id: str
    bot: BotAPI
    webhook_secret: str
    refused: str = ""  # why nothing may be sent with this bot (an api_base the operator does not allow)
