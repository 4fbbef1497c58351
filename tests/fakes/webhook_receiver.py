"""A business's webhook endpoint (a CRM) on 127.0.0.1: it checks every delivery's signature the way
the README tells receivers to — its own HMAC-SHA256 of ``<timestamp>.<body>``, compared in
constant time, the timestamp no older than five minutes — and records what it accepted. It can
answer the next requests with an error status to exercise retries."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from tests.fakes import LocalServer


@dataclass
class Delivery:
    event: dict[str, Any]
    headers: dict[str, str]
    body: bytes


class WebhookReceiver(LocalServer):
    def __init__(self, secret: str = "") -> None:
        super().__init__()
        self.secret = secret
        self.accepted: list[Delivery] = []
        self.refused: list[str] = []  # why each refused request was refused
        self._answers: list[int] = []

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/hook", self._hook)

    def answer_next(self, *statuses: int) -> None:
        self._answers += statuses

    def events(self, kind: str | None = None) -> list[dict[str, Any]]:
        return [d.event for d in self.accepted if kind is None or d.event["type"] == kind]

    def check(self, headers: Any, body: bytes) -> str | None:
        """Why a request is not a genuine, fresh delivery (``None``: it is)."""
        stamp, given = headers.get("X-Omnirouter-Timestamp", ""), headers.get("X-Omnirouter-Signature", "")
        if not stamp.isdigit() or abs(time.time() - int(stamp)) > 300:
            return "stale or missing timestamp"
        expected = "sha256=" + hmac.new(self.secret.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, given):
            return "bad signature"
        return None

    async def _hook(self, request: web.Request) -> web.Response:
        body = await request.read()
        problem = self.check(request.headers, body)
        if problem:
            self.refused.append(problem)
            return web.Response(status=401, text=problem)
        if self._answers:
            return web.Response(status=self._answers.pop(0))
        self.accepted.append(Delivery(json.loads(body), dict(request.headers), body))
        return web.Response(status=204)
