"""The Twilio library's HTTP client as we hand it to the library: the form it sends is the one
aiohttp built from the library's dict (repeated keys for lists, UTF-8, ``None`` left out by the
library), with the same credentials, and a 429's ``Retry-After`` is noted for the sending task."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from bot.handlers.kit.twilio_http import TwilioHttpClient, last_retry_after
from tests.fakes import LocalServer


class Echo(LocalServer):
    def __init__(self) -> None:
        super().__init__()
        self.seen: list[dict[str, Any]] = []
        self.status = 201

    def routes(self, app: web.Application) -> None:
        app.router.add_route("*", "/{tail:.*}", self._echo)

    async def _echo(self, request: web.Request) -> web.Response:
        self.seen.append(
            {
                "body": await request.read(),
                "type": request.headers.get("Content-Type"),
                "auth": request.headers.get("Authorization"),
                "query": request.query_string,
            }
        )
        headers = {"Retry-After": "4"} if self.status == 429 else {}
        return web.json_response({"sid": "SM1"}, status=self.status, headers=headers)


@pytest.fixture
async def echo() -> AsyncIterator[Echo]:
    server = Echo()
    await server.start()
    yield server
    await server.stop()


FORM = {"To": "+15550100", "From": "+15550199", "Body": "Grüße ✓ & more=1", "MediaUrl": ["https://a/1", "https://a/2"]}


async def test_the_form_and_credentials_are_what_aiohttp_built_from_the_librarys_dict(echo: Echo) -> None:
    client = TwilioHttpClient(timeout=5)
    client.session = aiohttp.ClientSession()
    try:
        response = await client.request("POST", f"{echo.url}/Messages.json", data=FORM, auth=("AC1", "tök"))
        assert response.status_code == 201
        async with client.session.post(f"{echo.url}/Messages.json", data=aiohttp.FormData(FORM)) as reference:
            assert reference.status == 201
        await client.request("GET", f"{echo.url}/Messages.json", params={"PageSize": 50}, auth=("AC1", "tök"))
    finally:
        await client.session.close()
    ours, theirs, listed = echo.seen
    assert (ours["body"], ours["type"]) == (theirs["body"], theirs["type"])
    assert b"MediaUrl=https%3A%2F%2Fa%2F1&MediaUrl=https%3A%2F%2Fa%2F2" in ours["body"]
    assert aiohttp.BasicAuth.decode(ours["auth"], encoding="utf-8") == ("AC1", "tök", "utf-8")
    assert (listed["body"], listed["query"], listed["auth"]) == (b"", "PageSize=50", ours["auth"])


async def test_a_429s_retry_after_is_noted_for_the_task_that_sent(echo: Echo) -> None:
    client = TwilioHttpClient(timeout=5)
    client.session = aiohttp.ClientSession()
    echo.status = 429

    async def send() -> float | None:
        await client.request("POST", f"{echo.url}/Messages.json", data={"Body": "x"}, auth=("AC1", "t"))
        return last_retry_after()

    async def other() -> float | None:
        await asyncio.sleep(0)
        return last_retry_after()

    try:
        assert await asyncio.gather(send(), other()) == [4.0, None]
        assert last_retry_after() is None  # read once
    finally:
        await client.session.close()
