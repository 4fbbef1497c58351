"""What one bot-answered message costs under concurrent load: store round trips (counted by the
router's PyMongo command listener), embeddings of repeated texts; and the per-thread cap on the
bot's automatic replies, which stops loops with a customer that is itself a bot."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiohttp.test_utils import TestClient

from bot.keys import METRICS, NLU, STORE
from conversations.embedded import EmbeddedMongo
from conversations.repositories import Repositories
from conversations.thread_models import OutboxState
from tests import factories
from tests.conftest import make_settings
from tests.nlu.conftest import install

CUSTOMERS = 40


def store_commands(client: TestClient) -> float:
    metric = client.server.app[METRICS].store_commands
    return sum(
        sample.value for family in metric.collect() for sample in family.samples if sample.name.endswith("_total")
    )


async def post(client: TestClient, n: int, text: str, token: str | None) -> str:
    body: dict[str, Any] = {"id": f"m{n}-{time.monotonic_ns()}", "text": text, "name": f"customer {n}"}
    if token:
        body["visitor_token"] = token
    response = await client.post("/webchat/messages", json=body)
    assert response.status == 202, await response.text()
    return str((await response.json())["visitor_token"])


async def settled(store: Repositories, answered: int, timeout: float = 60) -> None:
    """Every inbound dispatched and ``answered`` bot replies sent (read on the test's own client)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pending = await factories.messages(store, direction="in", dispatch_state="pending")
        sent = len(await factories.outbox(store, state=OutboxState.SENT))
        if not pending and sent >= answered:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the router did not settle")


async def test_a_bot_answered_message_costs_at_most_three_store_round_trips_under_load(
    embedded: EmbeddedMongo, db_name: str, store: Repositories, starter_blob: bytes, start_client: Any
) -> None:
    await install(store, starter_blob)
    client = await start_client(make_settings(embedded.uri, db_name))
    tokens = await asyncio.gather(*(post(client, n, "hello", None) for n in range(CUSTOMERS)))
    await settled(store, CUSTOMERS)  # contacts and threads exist: these are returning customers
    before = store_commands(client)
    texts = ("what are your opening hours?", "where is my order A-1234?", "thanks")
    await asyncio.gather(*(post(client, n, texts[n % 3], token) for n, token in enumerate(tokens)))
    await asyncio.gather(*(post(client, n, texts[(n + 1) % 3], token) for n, token in enumerate(tokens)))
    await settled(store, 3 * CUSTOMERS)
    per_message = (store_commands(client) - before) / (2 * CUSTOMERS)
    decisions = {(m.decision or {}).get("action") for m in await factories.messages(store, direction="in")}
    assert decisions == {"answered"}
    # the whole pipeline: record, dispatch (NLU state, reply, decision), send, completion, events
    print(f"store round trips per bot-answered message: {per_message:.2f}")
    assert per_message <= 3.0, per_message


async def test_repeated_texts_are_embedded_once(
    embedded: EmbeddedMongo, db_name: str, store: Repositories, starter_blob: bytes, start_client: Any
) -> None:
    await install(store, starter_blob)
    client = await start_client(make_settings(embedded.uri, db_name))
    nlu = client.server.app[NLU]
    first = [await nlu.parse("default", text) for text in ("hi", "thanks", "hi", "thanks", "hi")]
    assert nlu.query_embedder.computed == 2
    assert [p.intent for p in first[:2]] == [p.intent for p in first[2:4]]
    assert first[0].confidence == first[2].confidence  # the same vector, the same answer
    await nlu.parse("default", "where is my parcel?")
    assert nlu.query_embedder.computed == 3
    # texts arriving while the engine works are embedded together in its next call
    calls = nlu.query_embedder.calls
    parses = await asyncio.gather(*(nlu.parse("default", f"where is my order A-{n}?") for n in range(12)))
    assert nlu.query_embedder.computed == 15 and nlu.query_embedder.calls - calls <= 3
    assert {p.intent for p in parses} == {"order_status"}


async def test_the_bot_hands_a_conversation_to_a_human_after_its_reply_limit(
    embedded: EmbeddedMongo, db_name: str, store: Repositories, starter_blob: bytes, start_client: Any
) -> None:
    await install(store, starter_blob)
    settings = make_settings(embedded.uri, db_name, dispatch={"sweep_interval": 0.1, "max_bot_replies": 3})
    client = await start_client(settings)
    token = None
    for _n in range(6):  # an auto-responder asking the same thing after every answer
        token = await post(client, 0, "what are your opening hours?", token)
        await settled(store, 0)
    inbound = [m.to_doc() for m in await factories.messages(store, direction="in")]
    actions = [(m["decision"]["action"], m["decision"]["reason"]) for m in inbound]
    assert actions[:3] == [("answered", "opening_hours")] * 3
    assert actions[3] == ("queued", "bot_reply_limit")
    assert actions[4:] == [("waiting", "already_queued")] * 2
    thread = await client.server.app[STORE].threads.get_thread(inbound[0]["thread_id"])
    assert thread is not None and thread.status == "queued" and thread.escalation_reason == "bot_reply_limit"
    replies = [m for m in await factories.messages(store, direction="out") if m.sender.get("kind") == "bot"]
    assert len(replies) == 3
