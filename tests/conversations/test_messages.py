"""Recording and reading messages against the embedded server over a real socket: round trips,
idempotency, the dispatch lease, delivery status."""

from __future__ import annotations

import time
from datetime import timedelta

from conversations.models import utcnow
from conversations.outbox import outbound_document, settled_document
from conversations.repositories import Repositories
from conversations.thread_models import Decision, DecisionAction, DispatchState, ThreadStatus
from conversations.traffic import DeliveryStatus, Direction, Identity, StatusUpdate
from tests import factories
from tests.conftest import raw_database_of
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
    """A 100,000-character letter's search terms are made in a child process: what the event loop's
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


async def test_a_reply_sent_first_is_stored_with_the_decision_once_and_a_stored_one_is_kept(
    store: Repositories,
) -> None:
    """The decision and a reply sent before it was stored go in one command: the reply is an
    upsert with ``$setOnInsert`` (MongoDB's own semantics: inserted with the filter's ``_id`` when
    missing, untouched when there), which the embedded store applies alike, with the insert seen
    by a change stream as one. Asked again (a retry after an outage), nothing changes; a reply a
    replay stored first is kept as it is."""
    message, thread, _ = await record(store, inbound())
    first, doc = outbound_document(
        dedup_key=f"{message.id}:bot-reply",
        thread=thread,
        to=Identity("webchat", "alice"),
        text="Hi",
        sender={"kind": "bot"},
        now=utcnow(),
        in_reply_to=message.id,
        leased_by=("w1", LEASE),
    )
    sent = settled_document(doc, utcnow(), sent="p-1")
    decision = Decision(DecisionAction.ANSWERED, "greet", thread.id, replies=(first.id,))
    async with await raw_database_of(store).messages.watch([{"$match": {"operationType": "insert"}}]) as stream:
        for _ in range(2):  # the second: a retry of a write whose answer was lost
            await store.messages.finish_dispatch(message.id, decision, None, [sent])
        change = await stream.next()
    assert change["fullDocument"]["_id"] == first.id and change["fullDocument"]["send"]["state"] == "sent"
    [item] = await factories.outbox(store)
    assert (item.id, item.state, item.attempts, item.provider_message_id) == (first.id, "sent", 1, "p-1")
    [reply] = await factories.messages(store, thread.account_id, direction="out")
    assert reply.external_id == "p-1" and reply.delivery_status == DeliveryStatus.SENT and reply.text == "Hi"
    decided = await store.messages.get_message(message.id)
    assert decided.dispatch_state is DispatchState.DONE and decided.decision["replies"] == [first.id]

    # a reply that a replay stored first (pending: its send to come) is kept as it is
    pending = dict(settled_document(doc, utcnow(), error="telegram 429", due_at=utcnow()), _id="replayed")
    await store.messages.store_sent_replies([pending])
    await store.messages.store_sent_replies([dict(sent, _id="replayed")])
    replayed = await store.outbox.get_outbox("replayed")
    assert replayed is not None and replayed.state == "pending" and replayed.last_error == "telegram 429"


async def test_an_edit_applies_to_a_message_that_starts_with_a_date(store: Repositories) -> None:
    await record(store, inbound("d1", "anna", "2024-05-01 delivery, please"))
    edited = await store.messages.apply_edit(inbound("d1", "anna", "2024-05-02 delivery, please"), utcnow())
    assert edited is not None and edited.text == "2024-05-02 delivery, please"
    assert [e["text"] for e in await store.messages.message_edits(edited.id)] == ["2024-05-01 delivery, please"]
    again = await store.messages.apply_edit(inbound("d1", "anna", "2024-05-03 delivery"), utcnow())
    assert again is not None and again.text == "2024-05-03 delivery"
    assert len(await store.messages.message_edits(edited.id)) == 2
