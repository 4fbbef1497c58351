"""Signed webhooks against a local receiver that checks every signature: the thread events of a
conversation's life, retries with the same event id, dead letters and redelivery, replay
protection, dispatch replays publishing nothing twice, private addresses refused, and accounts
kept apart."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from bot.handlers.kit.egress_guards import EgressGuards
from bot.keys import DISPATCHER, QUEUE, STORE
from bot.network_settings import WebhookSettings
from bot.router.webhooks.sender import WebhookSender
from bot.router.webhooks.signing import sign, verify
from bot.tasks import stop_tasks
from bot.web.keys import SERVICES
from conversations.agent_models import Role
from conversations.repositories import Repositories
from conversations.tenant_models import EVENT_TYPES, DeliveryState, WebhookDelivery
from tests.conftest import TEST_API_TOKEN, make_settings
from tests.fakes.webhook_receiver import WebhookReceiver
from tests.router.test_inbound import wait_for
from tests.router.test_queue import customer_writes, make_agent

FAST = {"base_delay": 0.01, "max_delay": 0.05, "poll_interval": 0.05, "allow_private_networks": True}


@pytest.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    server = WebhookReceiver()
    await server.start()
    yield server
    await server.stop()


async def subscribe(
    client: TestClient, receiver: WebhookReceiver, account: str | None = None, **body: Any
) -> dict[str, Any]:
    params = {"account": account} if account else {}
    response = await client.post("/api/webhooks", params=params, json={"url": f"{receiver.url}/hook", **body})
    assert response.status == 201, await response.text()
    created: dict[str, Any] = await response.json()
    receiver.secret = created["secret"]
    return created


async def deliveries(store: Repositories, state: DeliveryState | None = None) -> list[WebhookDelivery]:
    """The deliveries to the default account's subscriptions (in one state)."""
    found: list[WebhookDelivery] = []
    for subscription in await store.webhooks.list_webhooks("default"):
        found += await store.webhooks.list_deliveries(subscription.id, state, limit=1000)
    return found


async def webhook_client(embedded: Any, db_name: str, start_client: Any, **webhooks: Any) -> TestClient:
    client: TestClient = await start_client(make_settings(embedded.uri, db_name, webhooks={**FAST, **webhooks}))
    return client


async def test_a_conversation_s_life_arrives_signed_in_order_of_its_events(
    embedded: Any, db_name: str, start_client: Any, receiver: WebhookReceiver
) -> None:
    client = await webhook_client(embedded, db_name, start_client)
    app = client.server.app
    created = await subscribe(client, receiver)
    assert created["subscription"]["events"] == list(EVENT_TYPES) and "secret" not in created["subscription"]

    thread_id = await customer_writes(app, "crm-visitor", "my parcel is lost")
    agent = await make_agent(app[STORE], "ava", role=Role.AGENT)
    await app[QUEUE].take(agent, thread_id)
    await app[SERVICES].replies.answer(thread_id, agent, "Let me check that for you.", "nonce-1")
    await app[QUEUE].resolve(thread_id, agent)

    async def all_arrived() -> bool:
        return len(receiver.accepted) >= 7

    await wait_for(all_arrived, timeout=10)
    assert receiver.refused == []  # every delivery carried a valid, fresh signature
    kinds = sorted(e["type"] for e in receiver.events())
    assert kinds == sorted(
        [
            "thread.created",
            "thread.message",
            "thread.message",
            "thread.queued",
            "thread.assigned",
            "thread.message",
            "thread.resolved",
        ]
    )
    assert {e["data"]["thread"]["id"] for e in receiver.events()} == {thread_id}
    assert all(e["account_id"] == "default" for e in receiver.events())
    inbound = [e for e in receiver.events("thread.message") if e["data"]["message"]["direction"] == "in"]
    assert [e["data"]["message"]["text"] for e in inbound] == ["my parcel is lost"]
    assigned = receiver.events("thread.assigned")[0]
    assert assigned["data"]["agent"] == {"id": agent.id, "name": "Ava"}
    assert assigned["data"]["thread"]["status"] == "assigned"
    assert receiver.events("thread.resolved")[0]["data"]["thread"]["status"] == "resolved"
    queued = receiver.events("thread.queued")[0]
    assert queued["data"]["reason"] == "no_nlu"
    delivery = receiver.accepted[0]
    assert delivery.headers["X-Omnirouter-Event"] == delivery.event["type"]
    assert delivery.headers["X-Omnirouter-Event-Id"] == delivery.event["id"]
    assert delivery.headers["X-Omnirouter-Delivery"].startswith("whd_")
    assert len({e["id"] for e in receiver.events()}) == 7  # every event has its own id


async def test_a_failing_receiver_gets_the_same_event_again_until_it_takes_it(
    embedded: Any, db_name: str, start_client: Any, receiver: WebhookReceiver
) -> None:
    client = await webhook_client(embedded, db_name, start_client)
    created = await subscribe(client, receiver, events=["thread.created"])
    receiver.answer_next(500, 503)
    await customer_writes(client.server.app, "flaky", "hello")

    async def accepted() -> bool:
        return len(receiver.accepted) == 1

    await wait_for(accepted, timeout=10)
    sub_id = created["subscription"]["id"]
    deliveries = (await (await client.get(f"/api/webhooks/{sub_id}/deliveries")).json())["items"]
    assert len(deliveries) == 1
    assert deliveries[0]["state"] == "sent" and deliveries[0]["attempts"] == 3 and deliveries[0]["last_status"] == 204
    assert deliveries[0]["event_id"] == receiver.events()[0]["id"]
    assert "body" not in deliveries[0]


async def test_a_dead_delivery_can_be_sent_again_and_410_switches_the_subscription_off(
    embedded: Any, db_name: str, start_client: Any, receiver: WebhookReceiver
) -> None:
    client = await webhook_client(embedded, db_name, start_client, max_attempts=2)
    created = await subscribe(client, receiver, events=["thread.created"])
    sub_id = created["subscription"]["id"]
    receiver.answer_next(500, 500)
    await customer_writes(client.server.app, "dead", "hello")

    async def dead() -> list[dict[str, Any]]:
        return (await (await client.get(f"/api/webhooks/{sub_id}/deliveries", params={"state": "dead"})).json())[
            "items"
        ]

    async def is_dead() -> bool:
        return len(await dead()) == 1

    await wait_for(is_dead, timeout=10)
    delivery = (await dead())[0]
    assert delivery["last_error"] == "HTTP 500" and receiver.accepted == []
    again = await client.post(f"/api/webhooks/{sub_id}/deliveries/{delivery['id']}/retry")
    assert again.status == 200 and (await again.json())["state"] == "pending"

    async def accepted() -> bool:
        return len(receiver.accepted) == 1

    await wait_for(accepted, timeout=10)
    assert (await client.post(f"/api/webhooks/{sub_id}/deliveries/{delivery['id']}/retry")).status == 200

    receiver.answer_next(410)
    await customer_writes(client.server.app, "gone", "hello")

    async def switched_off() -> bool:
        return (await (await client.get(f"/api/webhooks/{sub_id}")).json())["active"] is False

    await wait_for(switched_off, timeout=10)


async def test_a_replayed_dispatch_publishes_nothing_twice(
    embedded: Any, db_name: str, start_client: Any, receiver: WebhookReceiver
) -> None:
    client = await webhook_client(embedded, db_name, start_client)
    app = client.server.app
    await subscribe(client, receiver)
    thread_id = await customer_writes(app, "replayed", "once only")
    store = app[STORE]
    message = (await store.messages.thread_messages(thread_id))[0]
    before = len(await deliveries(store))
    await app[DISPATCHER].dispatch(message)  # what the sweeper does after a crash mid-dispatch
    assert len(await deliveries(store)) == before

    async def delivered() -> bool:
        return len(await deliveries(store, DeliveryState.SENT)) == before

    await wait_for(delivered, timeout=10)
    ids = [e["id"] for e in receiver.events()]
    assert len(ids) == len(set(ids)) == before == 4  # created, message in, notice out, queued


def test_the_signature_covers_the_timestamp_and_the_body() -> None:
    body, secret, now = b'{"id": "evt_1"}', "whsec_test", 1_800_000_000
    signature = sign(secret, now, body)
    assert verify(secret, str(now), signature, body, now=now + 10)
    assert not verify(secret, str(now), signature, body, now=now + 301)  # a captured request replayed later
    assert not verify(secret, str(now + 1), signature, body, now=now)  # another timestamp
    assert not verify(secret, str(now), signature, body + b" ", now=now)  # another body
    assert not verify("whsec_other", str(now), signature, body, now=now)
    assert not verify(secret, "", signature, body, now=now)


async def test_private_addresses_are_refused_unless_the_install_allows_them(
    embedded: Any, db_name: str, start_client: Any, receiver: WebhookReceiver
) -> None:
    client = await webhook_client(embedded, db_name, start_client, allow_private_networks=False)
    refused = await client.post("/api/webhooks", json={"url": f"{receiver.url}/hook"})
    assert refused.status == 400 and "not a public address" in (await refused.json())["detail"]
    port = receiver.url.rsplit(":", 1)[1]
    named = await client.post(
        "/api/webhooks", json={"url": f"http://localhost:{port}/hook", "events": ["thread.created"]}
    )
    assert named.status == 201  # a name is checked when it is resolved, at delivery
    sub_id = (await named.json())["subscription"]["id"]
    await customer_writes(client.server.app, "ssrf", "hello")

    async def dead() -> bool:
        items = (await (await client.get(f"/api/webhooks/{sub_id}/deliveries")).json())["items"]
        return bool(items) and items[0]["state"] == "dead"

    await wait_for(dead, timeout=10)
    items = (await (await client.get(f"/api/webhooks/{sub_id}/deliveries")).json())["items"]
    assert "not a public address" in items[0]["last_error"]
    assert receiver.accepted == [] and receiver.refused == []  # nothing reached it


async def test_a_receiver_the_operator_allows_by_name_gets_its_deliveries(
    embedded: Any, db_name: str, start_client: Any, receiver: WebhookReceiver
) -> None:
    port = receiver.url.rsplit(":", 1)[1]
    client: TestClient = await start_client(
        make_settings(
            embedded.uri,
            db_name,
            webhooks={**FAST, "allow_private_networks": False},
            egress={"allowed_destinations": f"localhost:{port}"},
        )
    )
    refused = await client.post(
        "/api/webhooks", json={"url": f"{receiver.url}/hook"}
    )  # the name is allowed, not the address
    assert refused.status == 400 and "not a public address (loopback)" in (await refused.json())["detail"]
    created = await client.post(
        "/api/webhooks", json={"url": f"http://localhost:{port}/hook", "events": ["thread.created"]}
    )
    assert created.status == 201
    receiver.secret = (await created.json())["secret"]
    await customer_writes(client.server.app, "allowed", "hello")

    async def arrived() -> bool:
        return len(receiver.accepted) == 1

    await wait_for(arrived, timeout=10)


async def test_the_router_s_own_address_and_metadata_are_refused_even_with_private_networks_allowed(
    embedded: Any, db_name: str
) -> None:
    from aiohttp.test_utils import TestServer

    from bot.app import create_app
    from conversations.embedded import free_port

    port = free_port()
    settings = make_settings(
        embedded.uri, db_name, webhooks={**FAST, "allow_private_networks": True}, server={"port": port}
    )
    async with TestClient(TestServer(create_app(settings), port=port)) as client:
        for url in (
            f"http://127.0.0.1:{port}/api/threads/thr_1/resolve",
            f"http://[::ffff:127.0.0.1]:{port}/api/x",
            "http://169.254.169.254/latest/meta-data/",
            "http://[fd00:ec2::254]/latest/",
        ):
            response = await client.post(
                "/api/webhooks", json={"url": url}, headers={"Authorization": f"Bearer {TEST_API_TOKEN}"}
            )
            assert response.status == 400, (url, await response.text())
            assert "not a public address" in (await response.json())["detail"]
        assert await client.server.app[STORE].webhooks.list_webhooks("default") == []


async def test_an_account_s_events_go_only_to_its_own_subscriptions(
    embedded: Any, db_name: str, start_client: Any, receiver: WebhookReceiver
) -> None:
    client = await webhook_client(embedded, db_name, start_client)
    other = WebhookReceiver()
    await other.start()
    try:
        made = await client.post("/api/accounts", json={"id": "shop2", "name": "Second shop"})
        assert made.status == 201
        await subscribe(client, other, account="shop2")
        await subscribe(client, receiver)
        await customer_writes(client.server.app, "mine", "hello")

        async def arrived() -> bool:
            return len(receiver.accepted) == 4

        await wait_for(arrived, timeout=10)
        assert other.accepted == []
        shop2_hooks = (await (await client.get("/api/webhooks", params={"account": "shop2"})).json())["items"]
        assert [h["account_id"] for h in shop2_hooks] == ["shop2"]
    finally:
        await other.stop()


async def test_webhook_secrets_are_sealed_at_rest_and_can_be_replaced(
    embedded: Any, db_name: str, start_client: Any, receiver: WebhookReceiver, raw_database: Any
) -> None:
    client = await webhook_client(embedded, db_name, start_client)
    created = await subscribe(client, receiver, events=["thread.created"])
    sub_id, first = created["subscription"]["id"], created["secret"]
    raw = await raw_database.webhook_subscriptions.find_one({"_id": sub_id})  # at rest
    assert raw["secret"].startswith("sealed:v2:") and first not in str(raw)
    assert "secret" not in await (await client.get(f"/api/webhooks/{sub_id}")).json()
    rotated = await (await client.post(f"/api/webhooks/{sub_id}/secret")).json()
    assert rotated["secret"] != first and rotated["secret"].startswith("whsec_")
    receiver.secret = rotated["secret"]
    await customer_writes(client.server.app, "rotated", "hello")

    async def accepted() -> bool:
        return len(receiver.accepted) == 1

    await wait_for(accepted, timeout=10)
    assert receiver.refused == []


async def test_deliveries_are_exported_and_erased_with_the_contact(
    embedded: Any, db_name: str, start_client: Any, receiver: WebhookReceiver
) -> None:
    from bot.services.contacts import erase_contact, export_contact, find_contact

    client = await webhook_client(embedded, db_name, start_client, concurrency=0)  # keep them stored
    store = client.server.app[STORE]
    await subscribe(client, receiver)
    thread_id = await customer_writes(client.server.app, "erasable", "my address is Elm Street 5")
    thread = await store.threads.get_thread(thread_id)
    assert thread is not None
    assert [d.thread_id for d in await deliveries(store)] == [thread_id] * 4
    scope = await find_contact(store, "default", thread.contact_id)
    exported = await export_contact(store, scope, "test")
    assert len(exported["data"]["webhook_deliveries"]) == 4
    await erase_contact(store, scope, "test")
    assert await deliveries(store) == []  # every one was about this contact


async def test_a_stopped_sender_ends_its_loop_without_being_cancelled(store: Repositories) -> None:
    """At shutdown the delivery worker is asked to stop (between two leases: ``test_leasing.py``),
    not cancelled, which inside a lease would leave a delivery leased, with no task, until its
    lease ran out."""
    sender = WebhookSender(
        store, WebhookSettings(), EgressGuards.from_settings(make_settings("mongodb://unused", "unused")).webhooks
    )
    loop = asyncio.create_task(sender.run())
    try:
        await asyncio.sleep(0.05)
        await asyncio.wait_for(sender.stop(), 5)
        assert loop.done() and not loop.cancelled()
    finally:
        await stop_tasks([loop])
        await sender.close()
