"""An inbox's assignment strategy: its queued conversations reach agents as the inbox says (manual,
next or auto), or as its account says when it sets none; the account's first inboxes follow the
account. Set through the inboxes API, honoured by the queue and its background worker."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp.test_utils import TestClient
from pymongo.errors import OperationFailure

from bot.keys import PIPELINE, QUEUE, STORE
from conversations.embedded import EmbeddedMongo
from conversations.repositories import Repositories
from conversations.thread_models import Thread, ThreadStatus
from conversations.traffic import Identity, Inbound
from tests.conftest import make_settings
from tests.router.test_inbound import wait_for
from tests.router.test_inbox_routing import INSTALL, web_chat
from tests.router.test_queue import make_agent

HANDOFF = "I need a human"


async def started(embedded: EmbeddedMongo, db_name: str, start_client: Any, strategy: str) -> TestClient:
    """A router whose account assigns by ``strategy``; its background worker never runs by itself."""
    settings = make_settings(embedded.uri, db_name, queue={"strategy": strategy, "assign_interval": 3600})
    return await start_client(settings)  # type: ignore[no-any-return]


async def asks_for_a_human(client: TestClient, visitor: str, inbox_id: str | None) -> Thread:
    """A visitor of the web chat ``inbox_id`` (``None``: the account's first) asks for a human."""
    app = client.server.app
    inbound = Inbound("default", "webchat", f"{visitor}:h", Identity("webchat", visitor), HANDOFF, inbox_id=inbox_id)
    recorded, task = await app[PIPELINE].receive(inbound)
    assert task is not None
    await task
    thread = await app[STORE].threads.get_thread(recorded.thread.id)
    assert thread is not None and thread.status in (ThreadStatus.QUEUED, ThreadStatus.ASSIGNED)
    return thread


async def test_an_auto_inbox_of_a_manual_account_assigns_its_own_conversations_only(
    embedded: EmbeddedMongo, db_name: str, start_client: Any
) -> None:
    client = await started(embedded, db_name, start_client, "manual")
    store: Repositories = client.server.app[STORE]
    ann = await make_agent(store, "ann")
    desk = await web_chat(client, "Desk", bot=False, strategy="auto")
    assert desk["routing"] == {"bot": False, "strategy": "auto"}

    first = await asks_for_a_human(client, "vic", None)  # the account's first web chat: manual
    assert first.status == ThreadStatus.QUEUED and first.assignee is None
    own = await asks_for_a_human(client, "val", desk["id"])
    assert own.status == ThreadStatus.ASSIGNED and own.assignee == ann.id
    assert await client.server.app[QUEUE].auto_assign("default") == 0  # the first inbox's still waits
    assert (await store.threads.get_thread(first.id)).status == ThreadStatus.QUEUED  # type: ignore[union-attr]


async def test_a_manual_inbox_of_an_auto_account_keeps_its_conversations_in_the_queue(
    embedded: EmbeddedMongo, db_name: str, start_client: Any
) -> None:
    client = await started(embedded, db_name, start_client, "auto")
    store: Repositories = client.server.app[STORE]
    desk = await web_chat(client, "Desk", bot=False, strategy="manual")
    other = await web_chat(client, "Other desk", bot=False)  # sets none: the account's, auto
    waiting = await asks_for_a_human(client, "val", desk["id"])  # nobody online yet: all wait
    await asks_for_a_human(client, "vic", None)
    await asks_for_a_human(client, "vin", other["id"])
    assert waiting.status == ThreadStatus.QUEUED

    ann = await make_agent(store, "ann")
    assert await client.server.app[QUEUE].auto_assign("default") == 2  # the first inbox's and the other desk's
    queued = await store.queue.queued_threads("default")
    assert [thread.id for thread in queued] == [waiting.id]
    assert {thread.inbox_id for thread in await store.queue.assigned_threads(ann.id)} == {None, other["id"]}
    # the manual inbox's conversation is the agent's to take
    taken = await client.server.app[QUEUE].take(ann, waiting.id)
    assert taken.status == ThreadStatus.ASSIGNED and taken.assignee == ann.id


async def test_a_strategy_changed_through_the_api_holds_at_once(
    embedded: EmbeddedMongo, db_name: str, start_client: Any
) -> None:
    """Saved, the change is followed by this router without waiting for its routing cache; left
    out again (``null``), the inbox follows its account."""
    client = await started(embedded, db_name, start_client, "manual")
    store: Repositories = client.server.app[STORE]
    desk = await web_chat(client, "Desk", bot=False)
    before = await asks_for_a_human(client, "val", desk["id"])
    await make_agent(store, "ann")
    assert before.status == ThreadStatus.QUEUED
    url = f"/api/accounts/default/inboxes/{desk['id']}"

    answer = await client.patch(url, json={"routing": {"strategy": "auto"}}, headers=INSTALL)
    assert answer.status == 200 and (await answer.json())["routing"] == {"bot": False, "strategy": "auto"}
    assert await client.server.app[QUEUE].auto_assign("default") == 1

    answer = await client.patch(url, json={"routing": {"strategy": None}}, headers=INSTALL)
    assert answer.status == 200 and (await answer.json())["routing"] == {"bot": False}
    after = await asks_for_a_human(client, "vic", desk["id"])
    assert after.status == ThreadStatus.QUEUED  # the account's manual again


async def test_the_background_worker_serves_a_manual_account_with_an_auto_inbox(
    embedded: EmbeddedMongo, db_name: str, start_client: Any
) -> None:
    """An agent who comes on shift in another process is no event here: the worker finds the
    account (whose own strategy is manual) by its auto inbox and assigns that inbox's conversation."""
    client = await started(embedded, db_name, start_client, "manual")
    store: Repositories = client.server.app[STORE]
    assert await store.accounts.auto_assigning_accounts(by_default=False) == []
    desk = await web_chat(client, "Desk", bot=False, strategy="auto")
    assert await store.accounts.auto_assigning_accounts(by_default=False) == ["default"]
    waiting = await asks_for_a_human(client, "val", desk["id"])
    first = await asks_for_a_human(client, "vic", None)
    assert waiting.status == ThreadStatus.QUEUED  # nobody on shift yet
    ann = await make_agent(store, "ann")  # straight in the store: as another process would

    async def assigned() -> bool:
        thread = await store.threads.get_thread(waiting.id)
        return thread is not None and thread.assignee == ann.id

    queue = client.server.app[QUEUE]
    assign, failures = queue.auto_assign, []

    async def failing_once(account_id: str) -> int:  # a store error that is no outage, once
        if not failures:
            failures.append(account_id)
            raise OperationFailure("database or disk is full", 8)
        return await assign(account_id)

    queue.auto_assign = failing_once  # the worker outlives it: nothing would restart it
    worker = asyncio.create_task(queue.keep_assigning(0.05))
    try:
        await wait_for(assigned)
    finally:
        worker.cancel()
    assert failures == ["default"]
    assert (await store.threads.get_thread(first.id)).status == ThreadStatus.QUEUED  # type: ignore[union-attr]
    await client.patch(
        f"/api/accounts/default/inboxes/{desk['id']}", json={"routing": {"strategy": "next"}}, headers=INSTALL
    )
    assert await store.accounts.auto_assigning_accounts(by_default=False) == []


async def test_a_strategy_that_is_none_is_a_clear_400_and_nothing_is_stored(
    embedded: EmbeddedMongo, db_name: str, start_client: Any
) -> None:
    client = await started(embedded, db_name, start_client, "manual")
    store: Repositories = client.server.app[STORE]
    for strategy in ("fastest", "", 1, "AUTO"):
        body = {"channel": "webchat", "name": "x", "settings": {}, "routing": {"strategy": strategy}}
        answer = await client.post("/api/accounts/default/inboxes", json=body, headers=INSTALL)
        assert answer.status == 400, (strategy, await answer.text())
        assert "strategy" in (await answer.json())["detail"], strategy
    assert await store.inboxes.list_inboxes("default") == []
    desk = await web_chat(client, "Desk", strategy="next")
    url = f"/api/accounts/default/inboxes/{desk['id']}"
    answer = await client.patch(url, json={"routing": {"strategy": "round-robin"}}, headers=INSTALL)
    assert answer.status == 400 and "strategy" in (await answer.json())["detail"]
    assert await store.inboxes.inbox_routing(desk["id"]) == {"strategy": "next"}


async def test_take_next_leaves_an_auto_inbox_s_conversations_to_automatic_assignment(
    embedded: EmbeddedMongo, db_name: str, start_client: Any
) -> None:
    """An account that works by next, with an auto inbox: an agent's *Take next* passes over the
    auto inbox's older conversation (automatic assignment's) and takes the first inbox's."""
    client = await started(embedded, db_name, start_client, "next")
    store: Repositories = client.server.app[STORE]
    desk = await web_chat(client, "Desk", bot=False, strategy="auto")
    own = await asks_for_a_human(client, "val", desk["id"])  # nobody on shift: both wait
    first = await asks_for_a_human(client, "vic", None)
    assert own.status == first.status == ThreadStatus.QUEUED
    ann = await make_agent(store, "ann")  # on shift now; the worker that would assign is not run
    taken = [await client.server.app[QUEUE].take_next(ann) for _ in range(2)]
    assert [t.id if t else None for t in taken] == [first.id, None]
    assert (await store.threads.get_thread(own.id)).status == ThreadStatus.QUEUED  # type: ignore[union-attr]
