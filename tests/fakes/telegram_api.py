"""A local Telegram Bot API server: enough of the real one for the channel's Bot API client pointed at it.

It records every call (method and parameters as sent), answers like Telegram does (``{"ok":
true, "result": ...}``), serves files by path, holds updates for ``getUpdates`` long polls, and can
be told to fail the next calls with 429 (with ``retry_after``), 500 or 403, or with a proxy's 502 page.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.web_request import FileField

from tests.fakes import LocalServer

TOKEN = "123456:TEST-token_for-the-fake"


@dataclass
class Call:
    method: str
    params: dict[str, Any]
    at: float
    status: int = 200  # what the fake answered


class FakeBotAPI(LocalServer):
    def __init__(self, token: str = TOKEN) -> None:
        super().__init__()
        self.token = token
        self.calls: list[Call] = []
        self.files: dict[str, bytes] = {}
        self.updates: list[dict[str, Any]] = []
        self.confirmed_offset: int | None = None
        self._failures: list[tuple[int, dict[str, Any]]] = []
        self._gateway_errors = 0
        self._new_update = asyncio.Event()
        self._ids = itertools.count(1000)

    def routes(self, app: web.Application) -> None:
        app.router.add_route("*", "/bot{token}/{method}", self._method)
        app.router.add_get("/file/bot{token}/{path:.+}", self._file)

    # --- scripting -----------------------------------------------------------------------

    def fail_next(self, status: int, times: int = 1, retry_after: int | None = None, description: str = "") -> None:
        body: dict[str, Any] = {
            "ok": False,
            "error_code": status,
            "description": description
            or {
                429: f"Too Many Requests: retry after {retry_after}",
                403: "Forbidden: bot was blocked by the user",
            }.get(status, "Internal Server Error"),
        }
        if retry_after is not None:
            body["parameters"] = {"retry_after": retry_after}
        self._failures += [(status, body)] * times

    def gateway_error_next(self, times: int = 1) -> None:
        """Answer the next calls, of any method, as a proxy in front of the API does when it
        cannot reach it: 502 with an HTML page, not Telegram's JSON."""
        self._gateway_errors += times

    def push_update(self, update: dict[str, Any]) -> None:
        self.updates.append(update)
        self._new_update.set()

    def sent(self, method: str = "sendMessage") -> list[dict[str, Any]]:
        return [c.params for c in self.calls if c.method == method]

    # --- the API -------------------------------------------------------------------------

    async def _method(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return web.json_response({"ok": False, "error_code": 401, "description": "Unauthorized"}, status=401)
        method = request.match_info["method"]
        params = {k: _value(v) for k, v in (await request.post()).items()}
        params.update({k: _value(v) for k, v in request.query.items()})
        self.calls.append(Call(method, params, time.monotonic()))
        if self._gateway_errors:
            self._gateway_errors -= 1
            self.calls[-1].status = 502
            return web.Response(
                status=502,
                content_type="text/html",
                text="<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>",
            )
        if method != "getUpdates" and self._failures:
            status, body = self._failures.pop(0)
            self.calls[-1].status = status
            return web.json_response(body, status=status)
        handler = getattr(self, f"_{method}", None)
        if handler is None:
            return web.json_response(
                {"ok": False, "error_code": 404, "description": "Not Found: method not found"}, status=404
            )
        result = await handler(params)
        return web.json_response({"ok": True, "result": result})

    async def _file(self, request: web.Request) -> web.Response:
        data = self.files.get(request.match_info["path"].removeprefix("files/"))
        if data is None or request.match_info["token"] != self.token:
            raise web.HTTPNotFound()
        return web.Response(body=data, content_type="application/octet-stream")

    def _message(self, chat_id: Any, **content: Any) -> dict[str, Any]:
        return {
            "message_id": next(self._ids),
            "date": int(time.time()),
            "chat": {"id": int(chat_id), "type": "private", "first_name": "Customer"},
            **content,
        }

    async def _sendMessage(self, params: dict[str, Any]) -> dict[str, Any]:
        return self._message(params["chat_id"], text=params["text"])

    async def _sendDocument(self, params: dict[str, Any]) -> dict[str, Any]:
        document = {"file_id": "BQACAgIAAxkDAAI", "file_unique_id": "AgAD", "file_name": "file"}
        return self._message(
            params["chat_id"], document=document, **({"caption": params["caption"]} if "caption" in params else {})
        )

    async def _sendPhoto(self, params: dict[str, Any]) -> dict[str, Any]:
        photo = [{"file_id": "AgACAgIAAxkDAAI", "file_unique_id": "AgAD", "width": 1, "height": 1}]
        return self._message(
            params["chat_id"], photo=photo, **({"caption": params["caption"]} if "caption" in params else {})
        )

    async def _getFile(self, params: dict[str, Any]) -> dict[str, Any]:
        file_id = params["file_id"]
        size = len(self.files.get(file_id, b""))
        return {"file_id": file_id, "file_unique_id": f"u{file_id}", "file_size": size, "file_path": f"files/{file_id}"}

    async def _getUpdates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        offset = int(params.get("offset", 0) or 0)
        if offset:
            self.confirmed_offset = offset
            self.updates = [u for u in self.updates if u["update_id"] >= offset]
        if not self.updates:
            self._new_update.clear()
            try:
                await asyncio.wait_for(self._new_update.wait(), min(float(params.get("timeout", 0) or 0), 0.5))
            except TimeoutError:
                pass
        return list(self.updates)

    async def _setWebhook(self, params: dict[str, Any]) -> bool:
        self.webhook = params
        return True

    async def _deleteWebhook(self, params: dict[str, Any]) -> bool:
        return True

    async def _getWebhookInfo(self, params: dict[str, Any]) -> dict[str, Any]:
        url = getattr(self, "webhook", {}).get("url", "")
        return {"url": url, "has_custom_certificate": False, "pending_update_count": len(self.updates)}

    async def _sendChatAction(self, params: dict[str, Any]) -> bool:
        if params.get("action") not in ("typing", "upload_document", "upload_photo"):
            raise web.HTTPBadRequest(text="Bad Request: wrong parameter action in request")
        return True

    async def _answerCallbackQuery(self, params: dict[str, Any]) -> bool:
        return True

    async def _getMe(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"id": 123456, "is_bot": True, "first_name": "Shop", "username": "shop_bot"}


def _value(raw: Any) -> Any:
    """Form values as sent: JSON-encoded objects (keyboards, lists) decoded, an uploaded file as
    ``{"filename", "content_type", "bytes"}``, the rest as strings."""
    if isinstance(raw, FileField):
        return {"filename": raw.filename, "content_type": raw.content_type, "bytes": raw.file.read()}
    if isinstance(raw, str) and raw[:1] in "[{":
        try:
            return json.loads(raw)
        except json.JSONDecodeError:
            return raw
    return raw
