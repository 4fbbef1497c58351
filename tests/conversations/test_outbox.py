"""The outbox against the embedded server: one item per dedup key, leases, retries, dead letters."""

from __future__ import annotations

from datetime import timedelta

from conversations.models import utcnow
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
