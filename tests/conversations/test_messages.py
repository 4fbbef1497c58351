"""Recording and reading messages against the embedded server over a real socket: round trips,
idempotency, the dispatch lease, delivery status."""

from __future__ import annotations

import time
from datetime import timedelta

from conversations.models import utcnow
from conversations.repositories import Repositories
from conversations.thread_models import Decision, DecisionAction, DispatchState, ThreadStatus
from conversations.traffic import DeliveryStatus, Direction, Identity, StatusUpdate
from tests import factories
from tests.conversations.test_search_words import long_letter
from tests.factories import LEASE, inbound, record


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
    contact = await store.contacts.get_contact(thread.contact_id)
    assert contact is not None and contact.identities == [Identity("webchat", "alice")]
    assert contact.name == "Alice"


async def test_same_inbound_twice_is_stored_once(store: Repositories) -> None:
    first, thread, dup1 = await record(store, inbound("same"))
    again, thread2, dup2 = await record(store, inbound("same"))
    assert (dup1, dup2) == (False, True)
    assert again.id == first.id and thread2.id == thread.id
    assert len(await factories.messages(store, "acme")) == 1


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


async def test_delivery_status_only_moves_forward(store: Repositories) -> None:
    _, thread, _ = await record(store, inbound())
    now = utcnow()
    message = await store.outbox.create_outbound(
        dedup_key="d", thread=thread, to=Identity("webchat", "alice"), text="x", sender={"kind": "bot"}, now=now
    )
    item = await store.outbox.lease_outbox("w", now, LEASE)
    await store.outbox.complete_outbox(item, "w", "prov-1", now)

    def update(status: DeliveryStatus, external_id: str = "prov-1") -> StatusUpdate:
        return StatusUpdate(account_id="acme", channel="webchat", external_id=external_id, status=status, at=utcnow())

    assert await store.messages.apply_status_update(update(DeliveryStatus.READ))
    assert not await store.messages.apply_status_update(update(DeliveryStatus.DELIVERED))  # late, ignored
    assert not await store.messages.apply_status_update(update(DeliveryStatus.READ))  # repeated, ignored
    assert not await store.messages.apply_status_update(update(DeliveryStatus.DELIVERED, "unknown"))
    assert (await store.messages.get_message(message.id)).delivery_status is DeliveryStatus.READ


async def test_recording_a_long_message_takes_the_event_loop_a_few_milliseconds(store: Repositories) -> None:
    """A 100,000-character letter's search terms are made on a worker thread: what the event loop's
    own thread spends (its CPU time, not a wall clock that a busy machine stretches) on recording it
    stays small, so the other customers' messages are not held meanwhile."""
    text = long_letter(100_000, "anna@example.lv")
    await record(store, inbound("warm", text="a first message: connections open"))
    spent = []
    for n in range(3):
        started = time.thread_time()
        await record(store, inbound(f"long-{n}", f"c{n}", text))
        spent.append(time.thread_time() - started)
    assert min(spent) < 0.010, spent  # its search terms alone take ~20 ms of CPU here
