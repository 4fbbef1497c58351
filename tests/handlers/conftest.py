"""Fixtures for the messenger channels: local fakes of the Bot API and the Graph API, and the
router configured to use them."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.app import create_app
from conversations.embedded import EmbeddedMongo
from tests.fakes.graph_api import FakeGraphAPI
from tests.fakes.telegram_api import FakeBotAPI
from tests.handlers.channels import channel_settings


@pytest.fixture
async def bot_api() -> AsyncIterator[FakeBotAPI]:
    fake = FakeBotAPI()
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
async def graph_api() -> AsyncIterator[FakeGraphAPI]:
    fake = FakeGraphAPI()
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
async def router(embedded: EmbeddedMongo, db_name: str, bot_api: FakeBotAPI, graph_api: FakeGraphAPI) -> AsyncIterator[TestClient]:
    """The router with Telegram and WhatsApp configured against the fakes."""
    settings = channel_settings(embedded.uri, db_name, telegram_api=bot_api.url, graph_api=graph_api.url)
    async with TestClient(TestServer(create_app(settings))) as client:
        yield client
