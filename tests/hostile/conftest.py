"""One router with every channel configured (provider APIs faked on 127.0.0.1), and helpers that
post signed traffic to it and read what the store holds."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient

from bot.keys import STORE
from bot.settings import Settings
from conversations.embedded import EmbeddedMongo
from tests.conftest import raw_database_of
from tests.fakes.graph_api import FakeGraphAPI
from tests.fakes.telegram_api import FakeBotAPI
from tests.fakes.twilio import ACCOUNT_SID, AUTH_TOKEN, PUBLIC_URL, FakeTwilio
from tests.handlers.channels import channel_settings
from tests.traffic import ROUTER_COLLECTIONS, SignedRequest

OUR_ADDRESS = "support@shop.example"


def every_channel(
    uri: str, db: str, telegram_api: str, graph_api: str, twilio_api: str, **extra: dict[str, Any]
) -> Settings:
    sections: dict[str, dict[str, Any]] = {
        "server": {"public_url": PUBLIC_URL},
        "twilio": {"account_sid": ACCOUNT_SID, "auth_token": AUTH_TOKEN, "api_base": twilio_api},
        "sms": {"from_number": "+14155550100"},
        "voice": {"enabled": True},
        "email": {"address": OUR_ADDRESS, "smtp_host": "127.0.0.1", "smtp_port": 9, "smtp_security": "none"},
    }
    for section, values in extra.items():
        sections.setdefault(section, {}).update(values)
    return channel_settings(uri, db, telegram_api=telegram_api, graph_api=graph_api, **sections)


@pytest.fixture
async def providers() -> AsyncIterator[tuple[FakeBotAPI, FakeGraphAPI, FakeTwilio]]:
    fakes = FakeBotAPI(), FakeGraphAPI(), FakeTwilio()
    for fake in fakes:
        await fake.start()
    yield fakes
    for fake in fakes:
        await fake.stop()


@pytest.fixture
async def everything(embedded: EmbeddedMongo, db_name: str, providers: Any, start_client: Any) -> TestClient:
    """The router with web chat, Telegram, WhatsApp, SMS, calls and e-mail."""
    bot_api, graph_api, twilio = providers
    client: TestClient = await start_client(
        every_channel(embedded.uri, db_name, bot_api.url, graph_api.url, twilio.url)
    )
    return client


async def post(client: TestClient, request: SignedRequest) -> ClientResponse:
    return await client.post(request.path, data=request.body, headers=dict(request.headers))


async def stored(client: TestClient) -> dict[str, int]:
    """How many documents each collection the pipeline writes holds, and how many sends (outbound
    messages with their send state) there are."""
    db = raw_database_of(client.server.app[STORE])
    counts = {name: await db[name].count_documents({}) for name in ROUTER_COLLECTIONS}
    counts["sends"] = await db.messages.count_documents({"send": {"$exists": True}})
    return counts


async def assert_clean_refusal(client: TestClient, response: ClientResponse, before: dict[str, int]) -> None:
    """A 4xx with a JSON reason, and nothing new in the store."""
    assert 400 <= response.status < 500, (response.status, await response.text())
    assert response.content_type == "application/json", await response.text()
    assert "error" in await response.json()
    assert await stored(client) == before


async def settled(client: TestClient, quiet: float = 0.3, timeout: float = 10.0) -> dict[str, int]:
    """The store's counts once dispatches and replies of earlier requests have finished."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    counts = await stored(client)
    while loop.time() < deadline:
        await asyncio.sleep(quiet)
        now = await stored(client)
        db = raw_database_of(client.server.app[STORE])
        busy = await db.messages.count_documents({"dispatch_state": "pending"}) + await db.messages.count_documents(
            {"send.state": "pending"}
        )
        if now == counts and not busy:
            return now
        counts = now
    raise AssertionError(f"the store did not settle: {counts}")
