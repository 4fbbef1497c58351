"""A stand-in Rasa server on 127.0.0.1: ``POST /model/parse`` answers from a table, or slowly,
or with an error, as a test asks."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer


class FakeRasa:
    def __init__(self) -> None:
        self.intents: dict[str, tuple[str, float]] = {}  # text -> (intent, confidence)
        self.delay = 0.0
        self.status = 200
        self.requests: list[dict[str, Any]] = []
        self.server = TestServer(self._app())

    @property
    def url(self) -> str:
        return str(self.server.make_url("/")).rstrip("/")

    def _app(self) -> web.Application:
        app = web.Application()
        app.add_routes([web.post("/model/parse", self.parse)])
        return app

    async def parse(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append({"body": body, "token": request.query.get("token")})
        await asyncio.sleep(self.delay)
        if self.status != 200:
            return web.json_response({"error": "boom"}, status=self.status)
        name, confidence = self.intents.get(body["text"], ("nlu_fallback", 0.3))
        return web.json_response(
            {
                "text": body["text"],
                "intent": {"name": name, "confidence": confidence},
                "entities": [],
                "intent_ranking": [
                    {"name": name, "confidence": confidence},
                    {"name": "goodbye", "confidence": round(1 - confidence, 3)},
                ],
            }
        )
