"""A store written by the release before issue 19 (send state in an ``outbox`` collection of its
own) upgraded at start-up: its pending and dead sends move onto their messages, none lost, none
sent twice. ``fixtures/outbox_58ddac4.json`` holds the documents that release's repository wrote
(commit 58ddac4): one send pending after a failed attempt, one leased by a worker still in flight,
one dead-lettered, one sent. And the index the release before this one leased through, dropped."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

from pymongo import ASCENDING, IndexModel

from bot.metrics import Metrics
from bot.router.outbox import Outbox
from conversations.models import epoch_ms, from_epoch_ms, utcnow
from conversations.repositories import Repositories
from conversations.thread_models import OutboxState
from conversations.traffic import DeliveryStatus, Identity
from tests.conversations.test_query_plans import queued
from tests.router.test_inbound import wait_for
from tests.router.test_outbox import RecordingChannel, outbox_settings, stopped

RELEASE = json.loads((Path(__file__).parent / "fixtures" / "outbox_58ddac4.json").read_text())
LEASE = timedelta(seconds=30)


async def written_by_the_release(store: Repositories) -> dict[str, Any]:
    """The release's documents in the store; its items by text."""
    db = store.client.database
    await db.messages.insert_many([dict(doc) for doc in RELEASE["messages"]])
    await db.outbox.insert_many([dict(doc) for doc in RELEASE["outbox"]])
    return {doc["text"]: doc for doc in RELEASE["outbox"]}


async def test_an_upgrade_moves_pending_and_dead_sends_onto_their_messages(store: Repositories) -> None:
    items = await written_by_the_release(store)
    await store.ensure_indexes()  # the start-up of the new release
    await store.ensure_indexes()  # and the next one: nothing moves twice
    db = store.client.database
    assert [doc["state"] for doc in await db.outbox.find({}).to_list()] == ["sent"]  # the sent one stays put

    waiting, in_flight, dead = items["waiting"], items["in flight"], items["given up"]
    # due now: the item that failed once, with its attempt and error
    first = await store.outbox.lease_outbox("w-new", from_epoch_ms(waiting["due_ms"]), timedelta(hours=1))
    assert first is not None and first.message_id == waiting["message_id"]
    assert (first.attempts, first.last_error, first.lapsed_owner) == (2, "503 from provider", None)
    assert first.to_outbound().meta == waiting["meta"] and first.options == ("yes", "no")
    # the one the old worker holds is not taken while its lease lasts ...
    assert await store.outbox.lease_outbox("w-new", from_epoch_ms(in_flight["due_ms"] - 1), LEASE) is None
    # ... and after, it is, knowing that worker's attempt ended with no outcome recorded
    second = await store.outbox.lease_outbox("w-new", from_epoch_ms(in_flight["due_ms"]), LEASE)
    assert second is not None and second.message_id == in_flight["message_id"] and second.lapsed_owner == "w-old"
    assert await store.outbox.lease_outbox("w-new", from_epoch_ms(in_flight["due_ms"] + 20_000), LEASE) is None

    for item in (first, second):
        assert await store.outbox.complete_outbox(item, "w-new", f"p-{item.id}", from_epoch_ms(item.due_ms))
        sent = await store.messages.get_message(item.message_id)
        assert sent is not None and sent.delivery_status is DeliveryStatus.SENT and sent.external_id == f"p-{item.id}"

    # the dead letter is listed where the console looks, with its error, and can be sent again
    [letter] = await store.outbox.dead_letters("acme")
    assert (letter.id, letter.last_error) == (dead["message_id"], "permanent: blocked")
    assert await store.outbox.revive_outbox(letter.id, from_epoch_ms(dead["due_ms"])) is not None
    assert [i.id for i in await store.outbox.list_outbox(OutboxState.PENDING, "acme")] == [letter.id]


async def test_an_upgrade_interrupted_after_moving_keeps_the_send_state_moved(store: Repositories) -> None:
    """A start-up that died between moving items and deleting them: the next one deletes them and
    keeps what the messages say since (here: sent by a worker of the new release)."""
    items = await written_by_the_release(store)
    waiting = items["waiting"]
    db = store.client.database
    await db.messages.update_one(
        {"_id": waiting["message_id"]},
        {"$set": {"send": {"state": "sent", "due_ms": 0, "attempts": 2, "to": waiting["to"]}}},
    )
    await store.ensure_indexes()
    assert await store.outbox.lease_outbox("w-new", from_epoch_ms(waiting["due_ms"] + 10**9), LEASE) is not None
    assert await store.outbox.lease_outbox("w-new", from_epoch_ms(waiting["due_ms"] + 10**9), LEASE) is None
    moved = await store.outbox.get_outbox(waiting["message_id"])
    assert moved is not None and moved.state is OutboxState.SENT and moved.attempts == 2


async def test_after_the_upgrade_a_worker_sends_each_pending_send_once(store: Repositories) -> None:
    """Through the new release's worker: the release's two pending sends go out once each (the one
    its worker held, once that lease ran out), the dead and the sent ones not at all."""
    items = await written_by_the_release(store)
    await store.ensure_indexes()
    channel = RecordingChannel()
    worker = Outbox(store, {"webchat": channel}, Metrics(), outbox_settings())
    assert await worker.send_due() == 2  # the fixture's times are long past: every lease has run out
    assert await worker.send_due() == 0
    assert sorted(channel.sent) == sorted(items[text]["message_id"] for text in ("waiting", "in flight"))
    assert len(await store.outbox.list_outbox(OutboxState.SENT, "acme")) == 2
    assert [i.id for i in await store.outbox.dead_letters("acme")] == [items["given up"]["message_id"]]


async def test_what_a_router_of_the_release_before_stores_meanwhile_is_moved_and_sent(store: Repositories) -> None:
    """During an upgrade a router of the release before may still run beside this one: a send it
    stores later is moved by the running worker and sent; one it holds leased stays in its hands."""
    channel = RecordingChannel()
    worker = Outbox(store, {"webchat": channel}, Metrics(), outbox_settings(), adopt_every=0.05)
    running = asyncio.create_task(worker.run())
    try:
        await asyncio.sleep(0.1)
        db = store.client.database
        waiting, in_flight = (dict(doc) for doc in RELEASE["outbox"][:2])
        in_flight["due_ms"] = epoch_ms(utcnow() + timedelta(hours=1))  # its worker's lease still runs
        await db.messages.insert_many([dict(doc) for doc in RELEASE["messages"][:2]])
        await db.outbox.insert_many([waiting, in_flight])

        async def sent() -> bool:
            return channel.sent == [waiting["message_id"]]

        await wait_for(sent, timeout=10)
        await asyncio.sleep(0.3)  # several adoptions and polls more
    finally:
        await stopped(running)
    assert channel.sent == [waiting["message_id"]]
    assert [doc["_id"] for doc in await db.outbox.find({}).to_list()] == [in_flight["_id"]]


async def test_the_due_time_index_of_the_release_before_is_dropped_and_the_lease_still_finds_its_sends(
    store: Repositories,
) -> None:
    """The release before this one leased through an index of the due time alone (which the
    embedded store filled with every send, the sent ones too): the start-up drops it, and a
    pending send stored before is leased through the index of state and due time."""
    db = store.client.database
    await db.messages.create_indexes(
        [IndexModel([("send.due_ms", ASCENDING)], partialFilterExpression={"send.state": "pending"})]
    )
    waiting = await store.outbox.create_outbound(
        dedup_key="k", thread=queued(1), to=Identity("webchat", "v"), text="x", sender={}, now=utcnow()
    )
    await store.ensure_indexes()
    keys = [list(index["key"]) for index in (await db.messages.index_information()).values()]
    assert [("send.due_ms", ASCENDING)] not in keys
    assert [("send.state", ASCENDING), ("send.due_ms", ASCENDING)] in keys
    leased = await store.outbox.lease_outbox("w", utcnow(), LEASE)
    assert leased is not None and leased.id == waiting.id
    assert await store.outbox.outbox_pending() == 1
