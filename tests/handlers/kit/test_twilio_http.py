"""The Twilio library's HTTP client as we hand it to the library: the form it sends is the one
aiohttp built from the library's dict (repeated keys for lists, UTF-8), with the credentials as a
Basic header, within the timeout it was made with, and a 429's ``Retry-After`` is noted once for
the task that sent."""

from __future__ import annotations

import asyncio
import base64
import time
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
        self.delay = 0.0

    def routes(self, app: web.Application) -> None:
        app.router.add_route("*", "/{tail:.*}", self._echo)

    async def _echo(self, request: web.Request) -> web.Response:
        await asyncio.sleep(self.delay)
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


def made(timeout: float = 5) -> TwilioHttpClient:
    client = TwilioHttpClient(pool_connections=False, timeout=timeout)
    client.session = aiohttp.ClientSession()
    return client


async def test_the_form_and_credentials_are_what_aiohttp_built_from_the_librarys_dict(echo: Echo) -> None:
    client = made()
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
    assert ours["auth"] == "Basic " + base64.b64encode("AC1:tök".encode()).decode()
    assert (listed["body"], listed["query"], listed["auth"]) == (b"", "PageSize=50", ours["auth"])


async def test_a_429s_retry_after_is_noted_for_the_task_that_sent_and_read_once(echo: Echo) -> None:
    client = made()
    echo.status = 429

    async def send() -> tuple[float | None, float | None]:
        await client.request("POST", f"{echo.url}/Messages.json", data={"Body": "x"}, auth=("AC1", "t"))
        return last_retry_after(), last_retry_after()

    try:
        assert await asyncio.create_task(send()) == (4.0, None)
        assert last_retry_after() is None  # another task's 429 is not this one's
    finally:
        await client.session.close()


async def test_the_timeout_it_was_made_with_holds_though_the_library_passes_none(echo: Echo) -> None:
    """Twilio's async client drops its own timeout: a hung API held a send with no limit at all
    (aiohttp takes a ``None`` timeout for none), not for ``twilio.timeout``."""
    client = made(timeout=0.5)
    echo.delay = 3
    started = time.monotonic()
    try:
        with pytest.raises(TimeoutError):
            await client.request("POST", f"{echo.url}/Messages.json", data={"Body": "x"}, timeout=None)
    finally:
        await client.session.close()
    assert time.monotonic() - started < 2.5
