"""One long message never stalls the others: the router with the starter model and the real
engine, fed messages of the longest size each channel accepts while ordinary customers write."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from bot.handlers.email.parse import FULL_TEXT_KEPT
from bot.keys import PIPELINE, STORE
from conversations.embedded import EmbeddedMongo
from conversations.repositories import Repositories
from conversations.thread_models import Decision, Message
from conversations.traffic import Identity, Inbound
from tests.conftest import make_settings, operator_client
from tests.nlu.conftest import install, starter_blob  # noqa: F401 (the session's starter model)
from tests.router.test_outbox_logs import router_lines
from tests.traffic import long_words, punctuation

# the longest text each channel lets in: the web chat's default ``webchat.max_text_length``, an
# e-mail body as the mail parser keeps it, and the signed SMS (a webhook body may be longer)
LONGEST = {"webchat": 4096, "email": FULL_TEXT_KEPT, "sms": 50_000}
ADDRESS = {"webchat": "v-{}", "email": "c{}@example.com", "sms": "+3712000{:04d}"}

StartRouter = Callable[..., Awaitable[TestClient]]


def inbound(channel: str, n: int, text: str) -> Inbound:
    sender = Identity(channel, ADDRESS[channel].format(n))
    return Inbound(account_id="default", channel=channel, external_id=f"{channel}-{n}", sender=sender, text=text)


async def send(client: TestClient, message: Inbound) -> asyncio.Task[Decision | None]:
    _, task = await client.server.app[PIPELINE].receive(message)
    assert task is not None
    return task


@pytest.fixture
async def start_router(
    embedded: EmbeddedMongo,
    db_name: str,
    store: Repositories,
    starter_blob: bytes,
    start_client: Any,
    caplog: pytest.LogCaptureFixture,
) -> StartRouter:
    """Start a router with the starter model active, its settings' sections overridden; its logs
    at INFO in ``caplog``."""
    caplog.set_level(logging.INFO)
    await install(store, starter_blob)

    async def start(**sections: Any) -> TestClient:
        return await start_client(make_settings(embedded.uri, db_name, **sections))

    return start


@dataclass(frozen=True)
class LongRun:
    """What one run of twenty longest messages of each channel among ordinary questions left."""

    long: list[Decision | None]
    ordinary: list[Decision | None]
    sent: dict[str, str]  # each long message's external id -> the text sent
    stored: dict[str, Message | None]  # ... -> its stored copy
    log: str  # the router's log lines of the run


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(scope="module")
async def long_run(embedded: EmbeddedMongo, starter_blob: bytes) -> AsyncIterator[LongRun]:
    """The scenario, run once for the module's tests: a customer first (the engine loaded and
    warm), then for each channel twenty texts of its longest size (half words, half punctuation),
    each followed by an ordinary customer's question."""
    logs, router_log = _Records(), logging.getLogger("omnirouter")
    level = router_log.level
    router_log.setLevel(logging.INFO)
    router_log.addHandler(logs)
    database = f"t_{uuid.uuid4().hex[:12]}"
    store = Repositories.connect(embedded.uri, database)
    await store.ensure_indexes()
    await install(store, starter_blob)
    client = operator_client(make_settings(embedded.uri, database))
    try:
        await client.start_server()
        async with asyncio.timeout(120):
            assert await (await send(client, inbound("webchat", 999, "hello"))) is not None
        sent: dict[str, str] = {}
        long, ordinary = [], []
        for channel, size in LONGEST.items():
            for n in range(20):
                text = punctuation(size) if n % 2 else long_words(size)
                message = inbound(channel, n, f"{n} {text}"[:size])
                sent[message.external_id] = message.text
                long.append(await send(client, message))
                ordinary.append(await send(client, inbound("webchat", 1000 + len(ordinary), f"where is parcel {n}?")))
        async with asyncio.timeout(280):
            decided = await asyncio.gather(*long, *ordinary)
        stored = {}
        for external_id, text in sent.items():
            channel, n = external_id.split("-")
            stored[external_id] = await client.server.app[STORE].messages.find_inbound(inbound(channel, int(n), text))
        yield LongRun(decided[: len(long)], decided[len(long) :], sent, stored, router_lines(logs.records))
    finally:
        await client.close()
        await store.close()
        router_log.removeHandler(logs)
        router_log.setLevel(level)


async def test_ordinary_customers_are_answered_while_long_messages_of_every_channel_wait(long_run: LongRun) -> None:
    assert len(long_run.long) == len(long_run.ordinary) == 60
    assert all(d is not None for d in long_run.long)
    assert all(d is not None and d.action == "answered" for d in long_run.ordinary), long_run.ordinary


async def test_every_long_text_is_stored_whole_and_decided(long_run: LongRun) -> None:
    for external_id, text in long_run.sent.items():
        found = long_run.stored[external_id]
        assert found is not None and found.text == text and found.decision is not None, external_id


async def test_no_long_message_is_decided_twice(long_run: LongRun) -> None:
    assert "dispatch.recovered" not in long_run.log  # none taken over by the sweeper


async def test_a_message_over_the_nlu_budget_goes_to_a_human_once(
    start_router: StartRouter, caplog: pytest.LogCaptureFixture
) -> None:
    nlu = {"parse_budget": 0.01, "max_tokens": 20_000}  # a bound raised far: the budget is all that is left
    client = await start_router(nlu=nlu)
    async with asyncio.timeout(120):
        decision = await (await send(client, inbound("sms", 1, long_words(12_600))))
    assert decision is not None and (decision.action, decision.reason) == ("queued", "nlu_over_budget")
    thread = await client.server.app[STORE].threads.get_thread(decision.thread_id)
    assert thread is not None and thread.status == "queued"
    lines = router_lines(caplog.records)
    assert "dispatch.nlu_over_budget" in lines and "dispatch.recovered" not in lines


async def test_a_dispatch_slower_than_its_lease_keeps_it_and_is_decided_once(
    start_router: StartRouter, caplog: pytest.LogCaptureFixture
) -> None:
    """The lease is two seconds, the parse takes several (the bound raised far): the lease is renewed
    while the message is worked on, so the sweeper does not take it over and parse it again."""
    client = await start_router(
        nlu={"max_tokens": 20_000, "parse_budget": 600}, dispatch={"lease_seconds": 2, "sweep_interval": 0.1}
    )
    async with asyncio.timeout(280):
        decision = await (await send(client, inbound("sms", 1, long_words(12_600))))
    assert decision is not None
    assert "dispatch.recovered" not in router_lines(caplog.records)
