"""Threads against the embedded server: one open thread per contact and channel, handed to the
queue once, times stored as epoch milliseconds."""

from __future__ import annotations

import asyncio
from typing import Any

from conversations.models import utcnow
from conversations.repositories import Repositories
from conversations.thread_models import Thread, ThreadStatus
from tests.factories import inbound, record


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
