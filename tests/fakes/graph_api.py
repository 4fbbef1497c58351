"""A local WhatsApp Cloud API (Graph API) server for pywa's async client pointed at it.

It records every request (path and JSON body), answers ``/messages`` with a fresh ``wamid``,
serves media (``GET /{media-id}`` then the URL it names), answers ``GET /{phone-number-id}`` for
its numbers (``numbers``: id -> display number), and can fail the next requests with
Meta's error bodies: 429 (code 130429, optional ``Retry-After``), 500, or any code (131047, ...).
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.web_request import FileField

from tests.fakes import LocalServer

PHONE_NUMBER_ID = "106540352242922"
ACCESS_TOKEN = "EAAG-test-access-token"


@dataclass
class Request:
    method: str
    path: str
    body: dict[str, Any]
    authorization: str
    at: float
    status: int = 200  # what the fake answered


class FakeGraphAPI(LocalServer):
    def __init__(self, token: str = ACCESS_TOKEN, first_id: int = 1) -> None:
        """``first_id``: where this fake's message ids start (Meta's are unique across numbers)."""
        super().__init__()
        self.token = token
        self.requests: list[Request] = []
        self.media: dict[str, tuple[bytes, str]] = {}
        self.media_urls: dict[str, str] = {}  # media id -> the URL to name instead of our own
        self.numbers: dict[str, str] = {PHONE_NUMBER_ID: "+1 555-0100"}  # phone number id -> display number
        self._failures: list[tuple[int, Any, dict[str, str]]] = []
        self._ids = itertools.count(first_id)

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/{version}/{phone_id}/messages", self._messages)
        app.router.add_post("/{version}/{phone_id}/media", self._upload)
        app.router.add_get("/{version}/{media_id}", self._media_info)
        app.router.add_get("/media-files/{media_id}", self._media_file)

    def fail_next(
        self,
        status: int,
        code: int | None = None,
        times: int = 1,
        retry_after: int | None = None,
        message: str = "",
        raw: str | None = None,
    ) -> None:
        """``raw``: answer with this text instead of Meta's error JSON (a proxy's error page)."""
        code = code if code is not None else {429: 130429, 500: 131000}.get(status, 100)
        body: Any = (
            raw
            if raw is not None
            else {
                "error": {
                    "message": message or f"(#{code}) fake failure",
                    "type": "OAuthException",
                    "code": code,
                    "fbtrace_id": "AbCdEf",
                }
            }
        )
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
        self._failures += [(status, body, headers)] * times

    def sent(self) -> list[dict[str, Any]]:
        return [r.body for r in self.requests if r.path.endswith("/messages")]

    def sent_ok(self) -> list[dict[str, Any]]:
        """The messages the fake accepted (answered with a message id)."""
        return [r.body for r in self.requests if r.path.endswith("/messages") and r.status == 200]

    def _authorised(self, request: web.Request) -> bool:
        return request.headers.get("Authorization") == f"Bearer {self.token}"

    async def _messages(self, request: web.Request) -> web.Response:
        body = await request.json() if request.can_read_body else {}
        self.requests.append(
            Request("POST", request.path, body, request.headers.get("Authorization", ""), time.monotonic())
        )
        if not self._authorised(request):
            return web.json_response(
                {"error": {"message": "Invalid OAuth access token.", "type": "OAuthException", "code": 190}}, status=401
            )
        if self._failures:
            status, error, headers = self._failures.pop(0)
            self.requests[-1].status = status
            if isinstance(error, str):
                return web.Response(text=error, status=status, headers=headers, content_type="text/html")
            return web.json_response(error, status=status, headers=headers)
        wamid = f"wamid.FAKE{next(self._ids):06d}"
        return web.json_response(
            {
                "messaging_product": "whatsapp",
                # a business-scoped user id (``recipient``) is answered with its ``user_id``
                "contacts": [
                    {"input": body.get("to"), "wa_id": body.get("to")}
                    if body.get("to")
                    else {"input": body.get("recipient"), "user_id": body.get("recipient")}
                ],
                "messages": [{"id": wamid}],
            }
        )

    async def _upload(self, request: web.Request) -> web.Response:
        """An uploaded media file, kept as if the customer had sent it (so it can be read back)."""
        form = await request.post()
        upload = form.get("file")
        self.requests.append(
            Request(
                "POST",
                request.path,
                {"type": form.get("type")},
                request.headers.get("Authorization", ""),
                time.monotonic(),
            )
        )
        if not self._authorised(request) or not isinstance(upload, FileField):
            return web.json_response({"error": {"message": "bad upload", "code": 100}}, status=400)
        media_id = f"{next(self._ids):016d}"
        self.media[media_id] = (upload.file.read(), upload.content_type)
        return web.json_response({"id": media_id})

    async def _media_info(self, request: web.Request) -> web.Response:
        media_id = request.match_info["media_id"]
        self.requests.append(
            Request("GET", request.path, {}, request.headers.get("Authorization", ""), time.monotonic())
        )
        if media_id in self.numbers:
            if not self._authorised(request):
                return web.json_response(
                    {"error": {"message": "Invalid OAuth access token.", "type": "OAuthException", "code": 190}},
                    status=401,
                )
            return web.json_response(
                {"display_phone_number": self.numbers[media_id], "verified_name": "Fake Shop", "id": media_id}
            )
        if media_id not in self.media or not self._authorised(request):
            return web.json_response(
                {"error": {"message": "Unsupported get request.", "type": "GraphMethodException", "code": 100}},
                status=400,
            )
        data, mime = self.media[media_id]
        url = self.media_urls.get(media_id, f"{self.url}/media-files/{media_id}")
        return web.json_response(
            {
                "messaging_product": "whatsapp",
                "url": url,
                "mime_type": mime,
                "sha256": "0" * 64,
                "file_size": len(data),
                "id": media_id,
            }
        )

    async def _media_file(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            raise web.HTTPUnauthorized()
        data, mime = self.media[request.match_info["media_id"]]
        return web.Response(body=data, content_type=mime)
