"""The outbox against the embedded server: one item per dedup key, leases, retries, dead letters."""

from __future__ import annotations

from datetime import timedelta

from conversations.models import utcnow
from conversations.outbox import INDEXES
from conversations.repositories import Repositories
from conversations.thread_models import OutboxState
from conversations.traffic import DeliveryStatus, Identity
from tests import factories
from tests.factories import LEASE, inbound, record


async def test_outbound_is_created_once_per_dedup_key(store: Repositories) -> None:
    _, thread, _ = await record(store, inbound())
    kwargs = {
        "dedup_key": "k1",
        "thread": thread,
        "to": Identity("webchat", "alice"),
        "text": "hello",
        "sender": {"kind": "bot"},
        "now": utcnow(),
    }
    first = await store.outbox.create_outbound(**kwargs)
    second = await store.outbox.create_outbound(**kwargs)
    assert first.id == second.id
    assert first.delivery_status is DeliveryStatus.QUEUED
    assert len(await factories.outbox(store)) == 1
    assert len(await factories.messages(store, "acme", direction="out")) == 1


async def test_lease_complete_retry_and_dead_letter(store: Repositories) -> None:
    _, thread, _ = await record(store, inbound())
    now = utcnow()
    message = await store.outbox.create_outbound(
        dedup_key="k", thread=thread, to=Identity("webchat", "alice"), text="x", sender={"kind": "bot"}, now=now
    )
    item = await store.outbox.lease_outbox("w1", now, LEASE)
    assert item is not None and item.attempts == 1 and item.lease_owner == "w1"
    assert await store.outbox.lease_outbox("w2", now, LEASE) is None  # leased: invisible to others
    await store.outbox.retry_outbox(item, "w1", "boom", now + timedelta(seconds=5))
    assert await store.outbox.lease_outbox("w2", now, LEASE) is None  # not due yet
    item = await store.outbox.lease_outbox("w2", now + timedelta(seconds=6), LEASE)
    assert item is not None and item.attempts == 2 and item.last_error == "boom"
    assert not await store.outbox.complete_outbox(item, "w1", "p1", now)  # w1 lost the lease
    await store.outbox.dead_letter_outbox(item, "w2", "gave up", now)
    dead = await store.outbox.list_outbox(OutboxState.DEAD)
    assert [d.id for d in dead] == [item.id]
    failed = await store.messages.get_message(message.id)
    assert failed is not None and failed.delivery_status is DeliveryStatus.FAILED
    revived = await store.outbox.revive_outbox(item.id, now)
    assert revived is not None and revived.attempts == 0
    again = await store.outbox.lease_outbox("w3", now, LEASE)
    assert again is not None
    assert await store.outbox.complete_outbox(again, "w3", "provider-1", now)
    sent = await store.messages.get_message(message.id)
    assert sent is not None and sent.delivery_status is DeliveryStatus.SENT and sent.external_id == "provider-1"


def test_the_outbox_listing_has_an_index_of_its_keys_in_their_order_on_mongodb() -> None:
    """``GET /api/outbox?state=…`` asks for one account's sends in one state, newest first: equal
    account, equal state, then the sort (MongoDB's equality-sort-range order), over the sends alone
    (a partial index, which the listing's query names with its ``$exists``)."""
    [model] = [m for m in INDEXES["messages"] if m.document.get("name") == "sends_by_account_state"]
    assert list(model.document["key"].items()) == [("account_id", 1), ("send.state", 1), ("created_at", -1)]
    assert model.document["partialFilterExpression"] == {"send.state": {"$exists": True}}


async def test_the_outbox_listing_keeps_to_its_account_and_state(store: Repositories) -> None:
    now = utcnow()
    ids: dict[str, str] = {}
    for account in ("acme", "other"):
        _, thread, _ = await record(store, inbound(account=account), now)
        for key in ("a", "b"):
            item = await store.outbox.create_outbound(
                dedup_key=f"{account}-{key}",
                thread=thread,
                to=Identity("webchat", "alice"),
                text=key,
                sender={},
                now=now,
            )
            ids[f"{account}-{key}"] = item.id
    leased = await store.outbox.lease_outbox("w", now, LEASE)
    assert leased is not None
    await store.outbox.dead_letter_outbox(leased, "w", "gone", now)
    dead_account = leased.account_id
    listed = {account: {i.id for i in await store.outbox.list_outbox(None, account)} for account in ("acme", "other")}
    assert listed == {a: {ids[f"{a}-a"], ids[f"{a}-b"]} for a in ("acme", "other")}
    assert [i.id for i in await store.outbox.list_outbox(OutboxState.DEAD, dead_account)] == [leased.id]
    other = "other" if dead_account == "acme" else "acme"
    assert await store.outbox.list_outbox(OutboxState.DEAD, other) == []
    assert {i.id for i in await store.outbox.list_outbox(OutboxState.PENDING, None)} == set(ids.values()) - {leased.id}


async def test_a_revived_dead_letter_starts_afresh_even_if_it_was_given_up_leased(store: Repositories) -> None:
    """A dead letter that still names the worker that held it (as an upgrade may move one) is sent
    again from scratch when revived, not taken for an attempt cut short."""
    _, thread, _ = await record(store, inbound())
    now = utcnow()
    message = await store.outbox.create_outbound(
        dedup_key="k", thread=thread, to=Identity("webchat", "alice"), text="x", sender={"kind": "bot"}, now=now
    )
    await store.client.database.messages.update_one(
        {"_id": message.id}, {"$set": {"send.state": "dead", "send.lease_owner": "w-old"}}
    )
    assert await store.outbox.revive_outbox(message.id, now) is not None
    again = await store.outbox.lease_outbox("w-new", now, LEASE)
    assert again is not None and again.lapsed_owner is None
