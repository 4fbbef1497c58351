"""Shared fixtures: one embedded store for the session (a real nx-27017 child process on a real
socket), a fresh database per test, and the router application on a real TCP port."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.app import create_app
from bot.settings import Settings
from conversations.embedded import EmbeddedMongo
from conversations.repositories import Repositories
from tests.actions import ActionServer
from tests.fakes.dns_server import FakeDns
from tests.fakes.graph_api import FakeGraphAPI
from tests.fakes.telegram_api import FakeBotAPI
from tests.mailservers import SmtpSink

TEST_SECRET_KEY = "0123456789abcdef" * 4  # seals channel secrets in the tests' stores
TEST_API_TOKEN = "test-install-token"  # api.token of the tests' routers: the superadmin's token for /api


@pytest.fixture(scope="session", autouse=True)
async def no_task_outlives_the_tests() -> AsyncIterator[None]:
    """After the last test, cancel what tests left running. PyMongo's asyncio ``Condition`` can keep
    a cancelled task waiting forever to re-acquire a pool lock nobody will release (a driver
    detail, seen once in a few hundred runs); such a task is named in a warning and let go, so the
    session's event loop can close instead of hanging on it."""
    yield
    current = asyncio.current_task()
    left = [task for task in asyncio.all_tasks() if task is not current and not task.done()]
    for task in left:
        task.cancel()
    _, pending = await asyncio.wait(left, timeout=30) if left else (set(), set())
    for task in pending:
        warnings.warn(f"a task ignored cancellation at the end of the tests: {task!r}", stacklevel=1)
        asyncio.tasks._unregister_task(task)  # type: ignore[attr-defined]


@pytest.fixture(scope="session")
async def embedded(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[EmbeddedMongo]:
    server = EmbeddedMongo(tmp_path_factory.mktemp("store"))
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def own_store(tmp_path: Path) -> AsyncIterator[EmbeddedMongo]:
    """An embedded store of this test alone (a real child process) in ``tmp_path / "store"``: its
    files hold only what the test wrote, and the test may stop it (an outage)."""
    server = EmbeddedMongo(tmp_path / "store")
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def db_name() -> str:
    return f"t_{uuid.uuid4().hex[:12]}"


def make_settings(uri: str, database: str, **sections: dict[str, Any]) -> Settings:
    """Settings for a test: the given store, fast timers, and any overrides per section."""
    fast: dict[str, dict[str, Any]] = {
        "store": {"mongodb_uri": uri, "database": database, "timeout_ms": 1500},
        "outbox": {"poll_interval": 0.05, "base_delay": 0.01, "max_delay": 0.05},
        "dispatch": {"sweep_interval": 0.1},
        "webchat": {"secret": "test-secret"},
        "security": {"secret_key": TEST_SECRET_KEY},
        "api": {"token": TEST_API_TOKEN},
        "nlu": {"auto_train": False, "reload_interval": 0.1},
    }
    for section, values in sections.items():
        fast.setdefault(section, {}).update(values)
    settings = Settings()
    return settings.with_sections(
        {section: dataclasses.replace(settings.named(section), **values) for section, values in fast.items()}
    )


@pytest.fixture
def settings(embedded: EmbeddedMongo, db_name: str) -> Settings:
    return make_settings(embedded.uri, db_name)


@pytest.fixture
async def store(embedded: EmbeddedMongo, db_name: str) -> AsyncIterator[Repositories]:
    """Every repository over the test's own database (the one ``settings`` names: a router the
    test starts shares it). Records are made with ``tests/factories.py``."""
    store = Repositories.connect(embedded.uri, db_name)
    await store.ensure_indexes()
    yield store
    await store.close()


def raw_database_of(store: Repositories) -> Any:
    """The database of ``store`` as the driver sees it, past the repositories. Only for a test that
    must plant what an older release or an attacker would have written (upgrade and hostile tests),
    or check what is at rest (a secret sealed, a token hashed, nothing left after an erasure or a
    refused request); every other test makes and reads records through the repositories and
    ``tests/factories.py``."""
    return store.client.database


@pytest.fixture
def raw_database(store: Repositories) -> Any:
    """The test's own database as the driver sees it: see ``raw_database_of``."""
    return raw_database_of(store)


def operator_client(settings: Settings) -> TestClient:
    """A real HTTP client of the router on 127.0.0.1, in its operator's hands: every request
    carries the install token (``api.token``), as the CLI's do. Console pages go by their session
    cookie and ignore it; a test of what a caller without a token gets sends its own header."""
    headers = {"Authorization": f"Bearer {settings.api.token}"} if settings.api.token else None
    return TestClient(TestServer(create_app(settings)), headers=headers)


def anonymous(client: TestClient) -> aiohttp.ClientSession:
    """A session to ``client``'s router that sends no token and no cookie (close it after use)."""
    return aiohttp.ClientSession(base_url=str(client.make_url("/")))


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[TestClient]:
    """The router on 127.0.0.1 with a real HTTP client (``operator_client``)."""
    async with operator_client(settings) as client:
        yield client


@pytest.fixture
async def start_client() -> AsyncIterator[Callable[[Settings], Awaitable[TestClient]]]:
    """Start more router instances (e.g. two "processes" on one store); stopped at teardown."""
    clients: list[TestClient] = []

    async def start(settings: Settings) -> TestClient:
        c = operator_client(settings)
        try:
            await c.start_server()
        except BaseException:  # a router that refused to start: its client session goes too
            await c.close()
            raise
        clients.append(c)
        return c

    yield start
    for c in reversed(clients):
        await c.close()


@pytest.fixture
async def bot_api() -> AsyncIterator[FakeBotAPI]:
    """A fake Telegram Bot API on 127.0.0.1 (channel and campaign tests)."""
    fake = FakeBotAPI()
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
async def graph_api() -> AsyncIterator[FakeGraphAPI]:
    """A fake WhatsApp Cloud (Graph) API on 127.0.0.1 (channel and campaign tests)."""
    fake = FakeGraphAPI()
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture(scope="session")
async def action_server() -> AsyncIterator[ActionServer]:
    """The starter's actions (config/actions/) on a real rasa-sdk action server, for the session."""
    server = ActionServer()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def sink() -> AsyncIterator[SmtpSink]:
    """A local SMTP server that keeps what it is given (an inbox's own outgoing server)."""
    server = SmtpSink()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def dns_server() -> AsyncIterator[FakeDns]:
    """A name server on 127.0.0.1 that mail-domain verification asks (``email.dns_servers``)."""
    server = FakeDns()
    await server.start()
    yield server
    await server.stop()
