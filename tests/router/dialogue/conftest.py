"""The starter bot with its forms, against the web chat; a real rasa-sdk action server when asked."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from conversations.embedded import EmbeddedMongo
from conversations.repositories import Repositories
from tests.conftest import make_settings
from tests.nlu.conftest import install, starter_blob  # noqa: F401 (the session's starter model)

Start = Callable[..., Awaitable[TestClient]]


@pytest.fixture
async def bot(
    embedded: EmbeddedMongo, db_name: str, store: Repositories, starter_blob: bytes, start_client: Any
) -> Start:
    """Start the router with the starter model active; keyword arguments override [dialogue]."""

    async def start(**dialogue: Any) -> TestClient:
        await install(store, starter_blob)
        return await start_client(make_settings(embedded.uri, db_name, dialogue=dialogue))

    return start
