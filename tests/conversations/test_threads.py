"""Threads against the embedded server: one open thread per contact and channel, handed to the
queue once, times stored as epoch milliseconds."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from conversations.embedded import EmbeddedMongo
from conversations.models import epoch_ms, utcnow
from conversations.repositories import Repositories
from conversations.thread_models import Thread, ThreadStatus, open_key
from conversations.threads import ThreadFilter
from conversations.traffic import Identity
from tests.factories import inbound, record
from tests.query_plans import captured_store, labelled


async def test_a_resolved_thread_frees_the_contact_for_a_new_one(store: Repositories) -> None:
    _, thread, _ = await record(store, inbound("a"))
    assert await store.queue.resolve(thread.id, utcnow(), None) is not None
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


async def test_times_written_by_updates_come_back_as_exact_datetimes(store: Repositories, raw_database: Any) -> None:
    # the embedded server would store a date written by $set as a string; we store epoch ms (at rest)
    message, thread, _ = await record(store, inbound())
    now = utcnow()
    await store.queue.queue_thread(thread.id, "no_nlu", message.id, now)
    queued = await store.threads.get_thread(thread.id)
    assert queued.queued_at == now and queued.queued_at.tzinfo is not None
    raw = await raw_database.threads.find_one({"_id": thread.id})
    assert isinstance(raw["queued_at"], int) and isinstance(raw["opened_at"], int)
    assert Thread.from_doc(raw).opened_at == thread.opened_at
    api = queued.to_json()
    assert api["queued_at"] == now.isoformat() and api["id"] == thread.id


async def _customer_writes(store: Repositories, external_id: str, at: datetime) -> Thread:
    """A customer message recorded as the router's inbound path records it (message and touch)."""
    _, thread, _ = await record(store, inbound(external_id, text=external_id), now=at)
    await store.threads.touch_thread(thread.id, at)
    return await store.threads.get_thread(thread.id)  # type: ignore[return-value]


async def test_a_thread_is_unread_from_the_first_message_no_agent_saw(store: Repositories) -> None:
    start = utcnow()
    first = await _customer_writes(store, "m1", start)
    assert first.unread_since_ms == epoch_ms(start)
    second = await _customer_writes(store, "m2", start + timedelta(seconds=2))
    assert second.unread_since_ms == epoch_ms(start)  # the oldest unseen message counts from
    assert second.unread_count == 2  # kept with the thread: the lists read no message to show it
    assert await store.threads.unread_counts([second]) == {second.id: 2}

    await store.threads.mark_seen("other", second.id, start + timedelta(seconds=3))  # not its account
    assert (await store.threads.get_thread(second.id)).unread_since_ms is not None  # type: ignore[union-attr]

    # seen as it was before the second message: the second stays unread
    await store.threads.mark_seen("acme", second.id, start + timedelta(seconds=1))
    partly = await store.threads.get_thread(second.id)
    assert partly is not None and partly.unread_count == 1
    assert await store.threads.unread_counts([partly]) == {partly.id: 1}
    unread = ThreadFilter(unread=True)
    assert await store.threads.count_threads("acme", unread) == 1

    await store.threads.mark_seen("acme", second.id, start + timedelta(seconds=3))
    read = await store.threads.get_thread(second.id)
    assert read is not None and read.unread_since_ms is None
    assert await store.threads.unread_counts([read]) == {}
    assert await store.threads.count_threads("acme", unread) == 0
    third = await _customer_writes(store, "m3", start + timedelta(seconds=4))
    assert third.unread_since_ms == epoch_ms(start + timedelta(seconds=4))
    assert await store.threads.unread_counts([third]) == {third.id: 1}


async def test_a_message_whose_touch_lands_after_the_agent_saw_it_is_not_unread(store: Repositories) -> None:
    start = utcnow()
    _, thread, _ = await record(store, inbound("late", text="late"), now=start)  # stored and shown...
    await store.threads.mark_seen("acme", thread.id, start + timedelta(seconds=1))  # ...and seen
    await store.threads.touch_thread(thread.id, start)  # the message's own update lands only now
    marked = await store.threads.get_thread(thread.id)
    assert marked is not None and marked.unread_since_ms is not None
    assert await store.threads.unread_counts([marked]) == {}
    cleaned = await store.threads.get_thread(thread.id)
    assert cleaned is not None and cleaned.unread_since_ms is None  # the stale mark is gone
    assert await store.threads.count_threads("acme", ThreadFilter(unread=True)) == 0


async def test_a_thread_marked_unread_by_the_release_before_is_counted_from_its_messages(
    store: Repositories, raw_database: Any
) -> None:
    """That release kept no count on the thread: its unread threads are counted from their
    messages once, and the count is written for the next time."""
    start = utcnow()
    await _customer_writes(store, "m1", start)
    thread = await _customer_writes(store, "m2", start + timedelta(seconds=1))
    await raw_database.threads.update_one({"_id": thread.id}, {"$unset": {"unread_count": ""}})
    old = await store.threads.get_thread(thread.id)
    assert old is not None and old.unread_count is None
    assert await store.threads.unread_counts([old]) == {thread.id: 2}
    upgraded = await store.threads.get_thread(thread.id)
    assert upgraded is not None and upgraded.unread_count == 2


async def test_a_list_is_counted_up_to_its_cap(store: Repositories) -> None:
    start = utcnow()
    for n in range(4):
        await record(store, inbound(f"c{n}", f"customer-{n}"), now=start)
    assert await store.threads.count_threads("acme", ThreadFilter()) == 4
    assert await store.threads.count_threads("acme", ThreadFilter(), cap=2) == 3  # more than 2: shown as "2+"
    assert await store.threads.count_threads("other", ThreadFilter()) == 0


async def test_an_open_thread_found_once_is_read_by_its_id_until_it_is_resolved(tmp_path: Path) -> None:
    """The inbound path's lookup of a contact's open thread: by its key the first time, then by
    the id found (one ``$in`` on ``_id`` for a batch, which both stores read through their primary
    index), and by its key again once that thread is no longer open under it."""
    async with captured_store(tmp_path) as (store, capture):
        first = await store.threads.open_thread("default", "con_1", Identity("webchat", "v1"), utcnow())
        for label in ("cold", "warm"):
            with labelled(label):
                found = await store.threads.find_open_thread("con_1", "webchat")
            assert found is not None and found.id == first.id
        assert await store.queue.resolve(first.id, utcnow(), None) is not None
        with labelled("resolved"):
            assert await store.threads.find_open_thread("con_1", "webchat") is None
        second = await store.threads.open_thread("default", "con_1", Identity("webchat", "v1"), utcnow())
        assert second.id != first.id
        with labelled("opened again"):
            found = await store.threads.find_open_thread("con_1", "webchat")
        assert found is not None and found.id == second.id
        with labelled("then"):
            found = await store.threads.find_open_thread("con_1", "webchat")
        assert found is not None and found.id == second.id
    reads = {label: command["filter"] for label, command in capture.captured.items()}
    key = {"open_key": {"$eq": open_key("con_1", "webchat", None)}}
    assert reads == {
        "cold: find threads": key,
        "warm: find threads": {"_id": {"$in": [first.id]}},
        "resolved: find threads": {"_id": {"$in": [first.id]}},  # then by its key: none open
        "opened again: find threads": key,
        "then: find threads": {"_id": {"$in": [second.id]}},
    }


async def test_an_open_thread_remembered_by_one_process_is_not_taken_once_another_resolved_it(
    store: Repositories, embedded: EmbeddedMongo, db_name: str
) -> None:
    """Two router processes on one store: the one that found a contact's open thread reads it by
    its id next time, and when the other has resolved it and opened a new one meanwhile, takes
    the new one (the remembered thread is no longer open under the key), in the same lookup."""
    other = Repositories.connect(embedded.uri, db_name)
    try:
        first = await store.threads.open_thread("acme", "con_1", Identity("sms", "+1"), utcnow())
        found = await store.threads.find_open_thread("con_1", "sms")
        assert found is not None and found.id == first.id
        assert await other.queue.resolve(first.id, utcnow(), None) is not None
        second = await other.threads.open_thread("acme", "con_1", Identity("sms", "+1"), utcnow())
        assert second.id != first.id
        found, new = await asyncio.gather(
            store.threads.find_open_thread("con_1", "sms"), store.threads.find_open_thread("con_2", "sms")
        )
        assert found is not None and found.id == second.id
        assert new is None
    finally:
        await other.close()
