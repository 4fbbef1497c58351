"""One long message never stalls the others: the router with the starter model and the real
engine, fed messages of the longest size each channel accepts while ordinary customers write."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from bot.handlers.email.parse import FULL_TEXT_KEPT
from bot.keys import PIPELINE, STORE
from conversations.embedded import EmbeddedMongo
from conversations.repositories import Repositories
from conversations.thread_models import Decision
from conversations.traffic import Identity, Inbound
from tests.conftest import make_settings
from tests.nlu.conftest import install, starter_blob  # noqa: F401 (the session's starter model)
from tests.router.test_outbox_logs import router_lines
from tests.traffic import long_words, punctuation

# the longest text each channel lets in: the web chat's default ``webchat.max_text_length``, an
# e-mail body as the mail parser keeps it, and the signed SMS (a webhook body may be longer)
LONGEST = {"webchat": 4096, "email": FULL_TEXT_KEPT, "sms": 50_000}
ADDRESS = {"webchat": "v-{}", "email": "c{}@example.com", "sms": "+3712000{:04d}"}


def inbound(channel: str, n: int, text: str) -> Inbound:
    sender = Identity(channel, ADDRESS[channel].format(n))
    return Inbound(account_id="default", channel=channel, external_id=f"{channel}-{n}", sender=sender, text=text)


async def start(
    embedded: EmbeddedMongo, db_name: str, store: Repositories, blob: bytes, start_client: Any, **sections: Any
) -> TestClient:
    await install(store, blob)
    return await start_client(make_settings(embedded.uri, db_name, **sections))


async def send(client: TestClient, message: Inbound) -> asyncio.Task[Decision | None]:
    _, task = await client.server.app[PIPELINE].receive(message)
    assert task is not None
    return task


async def test_ordinary_customers_are_answered_while_long_messages_of_every_channel_wait(
    embedded: EmbeddedMongo,
    db_name: str,
    store: Repositories,
    starter_blob: bytes,
    start_client: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    client = await start(embedded, db_name, store, starter_blob, start_client)
    async with asyncio.timeout(120):  # a customer before: the engine is loaded and warm
        assert await (await send(client, inbound("webchat", 999, "hello"))) is not None
    long_texts, tasks = {}, []
    for channel, size in LONGEST.items():
        for n in range(20):
            text = punctuation(size) if n % 2 else long_words(size)
            message = inbound(channel, n, f"{n} {text}"[:size])
            long_texts[message.external_id] = message.text
            tasks.append(await send(client, message))
            tasks.append(await send(client, inbound("webchat", 1000 + len(tasks), f"where is parcel {n}?")))
    async with asyncio.timeout(280):
        decisions = await asyncio.gather(*tasks)
    assert all(d is not None for d in decisions)
    assert all(d.action == "answered" for d in decisions[1::2]), decisions[1::2]  # type: ignore[union-attr]
    for external_id, text in long_texts.items():
        channel, n = external_id.split("-")
        found = await client.server.app[STORE].messages.find_inbound(inbound(channel, int(n), text))
        assert found is not None and found.text == text and found.decision is not None
    assert "dispatch.recovered" not in router_lines(caplog.records)  # none decided twice


async def test_a_message_over_the_nlu_budget_goes_to_a_human_once(
    embedded: EmbeddedMongo,
    db_name: str,
    store: Repositories,
    starter_blob: bytes,
    start_client: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    nlu = {"parse_budget": 0.01, "max_tokens": 20_000}  # a bound raised far: the budget is all that is left
    client = await start(embedded, db_name, store, starter_blob, start_client, nlu=nlu)
    async with asyncio.timeout(120):
        decision = await (await send(client, inbound("sms", 1, long_words(12_600))))
    assert decision is not None and (decision.action, decision.reason) == ("queued", "nlu_over_budget")
    thread = await client.server.app[STORE].threads.get_thread(decision.thread_id)
    assert thread is not None and thread.status == "queued"
    lines = router_lines(caplog.records)
    assert "dispatch.nlu_over_budget" in lines and "dispatch.recovered" not in lines


async def test_a_dispatch_slower_than_its_lease_keeps_it_and_is_decided_once(
    embedded: EmbeddedMongo,
    db_name: str,
    store: Repositories,
    starter_blob: bytes,
    start_client: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The lease is two seconds, the parse takes several (the bound raised far): the lease is renewed
    while the message is worked on, so the sweeper does not take it over and parse it again."""
    caplog.set_level(logging.INFO)
    client = await start(
        embedded,
        db_name,
        store,
        starter_blob,
        start_client,
        nlu={"max_tokens": 20_000, "parse_budget": 600},
        dispatch={"lease_seconds": 2, "sweep_interval": 0.1},
    )
    async with asyncio.timeout(280):
        decision = await (await send(client, inbound("sms", 1, long_words(12_600))))
    assert decision is not None
    assert "dispatch.recovered" not in router_lines(caplog.records)
