"""The store against the embedded server over a real socket: round trips, indexes, idempotency."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from conversations.agents import INDEXES
from conversations.models import utcnow
from conversations.nlu import INDEXES
from conversations.privacy import INDEXES
from conversations.queue import INDEXES
from conversations.reports import INDEXES
from conversations.repositories import INDEXES, Repositories
from conversations.sealing import Sealer, parse_key
from conversations.thread_models import (
    Contact, Decision, DecisionAction, DispatchState, Message, OutboxState, Thread, ThreadStatus,
)
from conversations.traffic import DeliveryStatus, Direction, Identity, Inbound
from conversations.training import INDEXES
from tests.conftest import TEST_SECRET_KEY

LEASE = timedelta(seconds=30)


def inbound(external_id: str = "m1", address: str = "alice", text: str = "hi") -> Inbound:
    return Inbound(
        account_id="acme", channel="webchat", external_id=external_id,
        sender=Identity("webchat", address), text=text, sender_name="Alice",
    )


async def record(store: Repositories, item: Inbound) -> tuple[Message, Thread, bool]:
    now = utcnow()
    contact_id = await store.contacts.find_or_create_contact(item.account_id, item.sender, item.sender_name, now)
    thread = await store.threads.touch_open_thread(contact_id, item.channel, now)
    if thread is None:
        thread = await store.threads.open_thread(item.account_id, contact_id, item.sender, now)
    message, duplicate = await store.messages.record_inbound(item, contact_id, thread.id, now, LEASE)
    return message, thread, duplicate


async def test_indexes_are_created_idempotently(store: Repositories) -> None:
    await store.ensure_indexes()  # the fixture ran it once already
    db = store._db
    every: dict[str, list[Any]] = {}
    for indexes in (INDEXES, AGENT_INDEXES, QUEUE_INDEXES, REPORT_INDEXES, PRIVACY_INDEXES, NLU_INDEXES,
                    TRAINING_INDEXES):
        for name, models in indexes.items():
            every.setdefault(name, []).extend(models)
    for collection, models in every.items():
        info = await db[collection].index_information()
        # field names and uniqueness (the embedded server reports every direction as 1)
        found = {(tuple(k for k, _ in spec["key"]), bool(spec.get("unique"))) for spec in info.values()}
        for model in models:
            wanted = (tuple(model.document["key"]), bool(model.document.get("unique")))
            assert wanted in found, (collection, model.document)
        assert len(info) == len(models) + 1  # plus _id: a second run added nothing


async def test_contact_thread_and_message_round_trip(store: Repositories) -> None:
    message, thread, duplicate = await record(store, inbound())
    assert not duplicate
    assert message.direction is Direction.IN
    assert message.dispatch_state is DispatchState.PENDING
    stored = await store.messages.get_message(message.id)
    assert stored == message
    assert await store.threads.get_thread(thread.id) == thread
    assert thread.status is ThreadStatus.BOT
    assert thread.address == "alice"
    contact_doc = await store._db.contacts.find_one({"_id": thread.contact_id})
    contact = Contact.from_doc(contact_doc)
    assert contact.identities == [Identity("webchat", "alice")]
    assert contact.name == "Alice"


async def test_same_inbound_twice_is_stored_once(store: Repositories) -> None:
    first, thread, dup1 = await record(store, inbound("same"))
    again, thread2, dup2 = await record(store, inbound("same"))
    assert (dup1, dup2) == (False, True)
    assert again.id == first.id and thread2.id == thread.id
    assert await store._db.messages.count_documents({}) == 1


async def test_concurrent_first_contact_makes_one_contact_and_one_thread(store: Repositories) -> None:
    results = await asyncio.gather(*(record(store, inbound(f"m{i}", address="bob")) for i in range(12)))
    assert len({thread.id for _, thread, _ in results}) == 1
    assert await store._db.contacts.count_documents({}) == 1
    assert await store._db.threads.count_documents({}) == 1
    assert await store._db.messages.count_documents({}) == 12


async def test_a_resolved_thread_frees_the_contact_for_a_new_one(store: Repositories) -> None:
    _, thread, _ = await record(store, inbound("a"))
    await store._db.threads.update_one({"_id": thread.id}, {"$set": {"status": "resolved"}, "$unset": {"open_key": ""}})
    _, newer, _ = await record(store, inbound("b"))
    assert newer.id != thread.id


async def test_queue_thread_only_moves_a_bot_thread_once(store: Repositories) -> None:
    message, thread, _ = await record(store, inbound())
    now = utcnow()
    results = await asyncio.gather(*(store.queue.queue_thread(thread.id, "no_nlu", message.id, now) for _ in range(5)))
    queued = [r for r in results if r is not None]
    assert len(queued) == 1 and queued[0].status is ThreadStatus.QUEUED
    assert queued[0].queued_by == message.id and queued[0].escalation_reason == "no_nlu"
    assert await store.queue.queue_depth("acme") == 1
    assert await store.queue.queue_depth("other") == 0


async def test_outbound_is_created_once_per_dedup_key(store: Repositories) -> None:
    _, thread, _ = await record(store, inbound())
    kwargs = dict(dedup_key="k1", thread=thread, to=Identity("webchat", "alice"), text="hello",
                  sender={"kind": "bot"}, now=utcnow())
    first = await store.outbox.create_outbound(**kwargs)
    second = await store.outbox.create_outbound(**kwargs)
    assert first.id == second.id
    assert first.delivery_status is DeliveryStatus.QUEUED
    assert await store._db.outbox.count_documents({}) == 1
    assert await store._db.messages.count_documents({"direction": "out"}) == 1


async def test_lease_complete_retry_and_dead_letter(store: Repositories) -> None:
    _, thread, _ = await record(store, inbound())
    now = utcnow()
    message = await store.outbox.create_outbound(dedup_key="k", thread=thread, to=Identity("webchat", "alice"),
                                          text="x", sender={"kind": "bot"}, now=now)
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


async def test_claim_undispatched_takes_only_expired_leases(store: Repositories) -> None:
    message, _, _ = await record(store, inbound())
    assert await store.messages.claim_undispatched(utcnow(), LEASE) is None  # its dispatcher still holds it
    later = utcnow() + LEASE + timedelta(seconds=1)
    claimed = await store.messages.claim_undispatched(later, LEASE)
    assert claimed is not None and claimed.id == message.id
    assert await store.messages.claim_undispatched(later, LEASE) is None  # the claim renewed the lease
    await store.messages.finish_dispatch(message.id, Decision(DecisionAction.QUEUED, "no_nlu", message.thread_id))
    assert await store.messages.claim_undispatched(later + LEASE * 2, LEASE) is None
    done = await store.messages.get_message(message.id)
    assert done is not None and done.dispatch_state is DispatchState.DONE
    assert done.decision == {"action": "queued", "reason": "no_nlu", "thread_id": message.thread_id, "replies": []}


async def test_shared_secret_is_created_once_and_kept_sealed(store: Repositories) -> None:
    store.client.use_sealer(Sealer(parse_key(TEST_SECRET_KEY)))
    values = await asyncio.gather(*(store.secrets.shared_secret("s", lambda: f"v{id(object())}") for _ in range(5)))
    assert len(set(values)) == 1
    raw = await store._db.secrets.find_one({"_id": "s"})
    assert raw is not None and raw["value"].startswith("sealed:v2:") and values[0] not in str(raw)


async def test_one_phone_number_on_two_channels_is_one_contact(store: Repositories) -> None:
    now = utcnow()
    wa = await store.contacts.find_or_create_contact("acme", Identity("whatsapp", "37120000000"), "Anna", now, phone="+37120000000")
    sms = await store.contacts.find_or_create_contact("acme", Identity("sms", "+37120000000"), None, now, phone="+37120000000")
    web = await store.contacts.find_or_create_contact("acme", Identity("webchat", "v1"), None, now)
    assert wa == sms != web
    contact = Contact.from_doc(await store._db.contacts.find_one({"_id": wa}))
    assert set(contact.identities) == {Identity("whatsapp", "37120000000"), Identity("sms", "+37120000000")}
    other_account = await store.contacts.find_or_create_contact("other", Identity("sms", "+37120000000"), None, now, phone="+37120000000")
    assert other_account != wa  # accounts never share contacts


async def test_first_messages_racing_in_on_two_channels_make_one_contact(store: Repositories) -> None:
    now = utcnow()
    ids = await asyncio.gather(*(
        store.contacts.find_or_create_contact("acme", Identity(channel, f"{channel}-addr"), None, now, phone="+15550001")
        for channel in ("whatsapp", "sms", "telegram") * 3
    ))
    assert len(set(ids)) == 1
    assert await store._db.contacts.count_documents({}) == 1


async def test_delivery_status_only_moves_forward(store: Repositories) -> None:
    from conversations.traffic import StatusUpdate

    _, thread, _ = await record(store, inbound())
    now = utcnow()
    message = await store.outbox.create_outbound(dedup_key="d", thread=thread, to=Identity("webchat", "alice"),
                                          text="x", sender={"kind": "bot"}, now=now)
    item = await store.outbox.lease_outbox("w", now, LEASE)
    await store.outbox.complete_outbox(item, "w", "prov-1", now)

    def update(status: DeliveryStatus, external_id: str = "prov-1") -> StatusUpdate:
        return StatusUpdate(account_id="acme", channel="webchat", external_id=external_id, status=status, at=utcnow())

    assert await store.messages.apply_status_update(update(DeliveryStatus.READ))
    assert not await store.messages.apply_status_update(update(DeliveryStatus.DELIVERED))  # late, ignored
    assert not await store.messages.apply_status_update(update(DeliveryStatus.READ))  # repeated, ignored
    assert not await store.messages.apply_status_update(update(DeliveryStatus.DELIVERED, "unknown"))
    assert (await store.messages.get_message(message.id)).delivery_status is DeliveryStatus.READ


async def test_times_written_by_updates_come_back_as_exact_datetimes(store: Repositories) -> None:
    # the embedded server would store a date written by $set as a string; we store epoch ms
    message, thread, _ = await record(store, inbound())
    now = utcnow()
    await store.queue.queue_thread(thread.id, "no_nlu", message.id, now)
    queued = await store.threads.get_thread(thread.id)
    assert queued.queued_at == now and queued.queued_at.tzinfo is not None
    raw = await store._db.threads.find_one({"_id": thread.id})
    assert isinstance(raw["queued_at"], int) and isinstance(raw["opened_at"], int)
    assert Thread.from_doc(raw).opened_at == thread.opened_at
    api = queued.to_json()
    assert api["queued_at"] == now.isoformat() and api["id"] == thread.id
