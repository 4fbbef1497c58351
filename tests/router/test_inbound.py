"""Recording is durable and idempotent, also across concurrent deliveries and app instances."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp.test_utils import TestClient

from bot.keys import PIPELINE, STORE
from bot.settings import Settings
from conversations.models import utcnow
from conversations.repositories import Repositories
from conversations.traffic import Identity, Inbound
from tests import factories


def webchat_inbound(external_id: str, text: str = "where is my order?") -> Inbound:
    return Inbound(
        account_id="default",
        channel="webchat",
        external_id=external_id,
        sender=Identity("webchat", "v-alice"),
        text=text,
    )


async def wait_for(predicate: Any, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


async def test_concurrent_deliveries_are_stored_and_dispatched_once(client: TestClient) -> None:
    app = client.server.app
    results = await asyncio.gather(*(app[PIPELINE].receive(webchat_inbound("dup-1")) for _ in range(8)))
    recorded = [r for r, task in results if task is not None]
    assert len(recorded) == 1, "exactly one delivery dispatches"
    assert {r.message.id for r, _ in results} == {recorded[0].message.id}
    await asyncio.gather(*(task for _, task in results if task is not None))
    assert len(await factories.messages(app[STORE], direction="in")) == 1
    assert len(await factories.outbox(app[STORE])) == 1  # one queued notice, not eight


async def test_two_app_instances_on_one_store_store_and_answer_once(settings: Settings, start_client: Any) -> None:
    first, second = await start_client(settings), await start_client(settings)
    body = {"id": "same-id", "text": "hello", "visitor_token": None}
    # both instances share the visitor-token key through the store, so a token from one works on the other
    issued = await (await first.post("/webchat/messages", json={"id": "warmup", "text": "hi"})).json()
    body["visitor_token"] = issued["visitor_token"]
    responses = await asyncio.gather(*(c.post("/webchat/messages", json=body) for c in (first, second, first, second)))
    payloads = [await r.json() for r in responses]
    assert {r.status for r in responses} == {202}
    assert len({p["message_id"] for p in payloads}) == 1
    assert sorted(p["duplicate"] for p in payloads) == [False, True, True, True]
    store = first.server.app[STORE]
    await wait_for(lambda: _all_dispatched(store))
    assert len(await factories.messages(store, direction="in")) == 2
    assert len(await factories.threads(store)) == 1
    # the warm-up message queued the thread and got the one notice; the duplicate joined it quietly
    assert len(await factories.outbox(store)) == 1


async def _all_dispatched(store: Repositories) -> bool:
    return not await factories.messages(store, direction="in", dispatch_state="pending")


async def test_a_late_duplicate_after_resolution_opens_no_new_thread(client: TestClient) -> None:
    app = client.server.app
    recorded, task = await app[PIPELINE].receive(webchat_inbound("late"))
    assert task is not None
    await task
    store = app[STORE]
    assert await store.queue.resolve(recorded.thread.id, utcnow(), None) is not None
    again, again_task = await app[PIPELINE].receive(webchat_inbound("late"))
    assert again.duplicate and again_task is None
    assert again.thread.id == recorded.thread.id
    assert len(await factories.threads(store)) == 1
