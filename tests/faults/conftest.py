"""Fixtures of the fault tests: a store of the test's own, the provider fakes, router processes."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from conversations.embedded import EmbeddedMongo
from tests.faults.harness import Providers, Router, SharedStore


@pytest.fixture
def shared_store(own_store: EmbeddedMongo) -> SharedStore:
    """The test's own store (stopped at teardown), which the test may stop and start again."""
    return SharedStore(own_store)


@pytest.fixture
async def providers() -> AsyncIterator[Providers]:
    fakes = Providers()
    await fakes.start()
    yield fakes
    await fakes.stop()


@pytest.fixture
def database() -> str:
    return f"faults_{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def routers(
    shared_store: SharedStore, providers: Providers, database: str, tmp_path: Path
) -> AsyncIterator[Callable[..., Awaitable[Router]]]:
    """Start `omnirouter serve` processes on the test's store; all are stopped at teardown."""
    started: list[Router] = []

    async def start(**settings: Any) -> Router:
        router = Router(shared_store.uri, database, providers, tmp_path / f"router{len(started)}", **settings)
        started.append(router)
        await router.start()
        return router

    yield start
    for router in started:
        await router.stop()
