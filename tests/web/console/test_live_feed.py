"""The live feed that follows the event log for the consoles connected to a process: every event
once, however busy the log; every reply stored read back from the messages as its thread's event;
no reading at all while no console is connected."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import Any

import pytest

from bot.web.console.live import LiveFeed
from conversations.ids import new_id
from conversations.models import from_epoch_ms, utcnow
from conversations.repositories import Repositories
from conversations.thread_models import Message
from conversations.traffic import Direction, Identity
from tests.factories import inbound, record, reply


async def delivered_within(seen: list[Any], count: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while len(seen) < count and time.monotonic() < deadline:
        await asyncio.sleep(0.02)


async def test_a_busy_log_is_read_page_by_page_and_each_event_delivered_once(store: Repositories) -> None:
    got: list[str] = []

    async def deliver(event: dict[str, Any]) -> None:
        got.append(str(event["_id"]))

    feed = asyncio.create_task(LiveFeed(store, "poll", 0.05).run(deliver))
    try:
        await asyncio.sleep(0.1)
        now = int(time.time() * 1000)
        # 1,200 events within 60 ms: more than a page (500) in the overlap the feed re-reads
        ids = await asyncio.gather(
            *(store.events.emit_event("default", "message", from_epoch_ms(now + n // 20)) for n in range(1200))
        )
        await delivered_within(got, len(ids))
        await asyncio.sleep(0.3)  # later polls re-read the overlap: nothing is delivered twice
        assert sorted(got) == sorted(ids)
        late = await store.events.emit_event("default", "message", from_epoch_ms(now + 100))
        await delivered_within(got, len(ids) + 1)
        assert got[-1] == late and len(got) == len(ids) + 1
    finally:
        feed.cancel()


async def test_nothing_is_read_while_no_console_is_connected(store: Repositories) -> None:
    got: list[str] = []
    listening = False
    reads = 0
    events_since = store.events.events_since

    async def counting(at_ms: int, limit: int = 500) -> list[dict[str, Any]]:
        nonlocal reads
        reads += 1
        return await events_since(at_ms, limit)

    async def deliver(event: dict[str, Any]) -> None:
        got.append(str(event["_id"]))

    store.events.events_since = counting  # type: ignore[method-assign]
    feed = asyncio.create_task(LiveFeed(store, "poll", 0.02).run(deliver, lambda: listening))
    try:
        await store.events.emit_event("default", "message", utcnow())
        await asyncio.sleep(0.2)
        assert reads == 0 and got == []
        listening = True
        await asyncio.sleep(0.2)
        assert reads > 0
    finally:
        feed.cancel()


async def test_events_older_than_an_hour_are_pruned_whatever_the_feed_reads(store: Repositories) -> None:
    """Pruning runs beside the feed, not inside its polling: a feed on a change stream, or one with
    no console listening, still keeps the log to its last hour."""
    now = int(time.time() * 1000)
    old = await store.events.emit_event("default", "message", from_epoch_ms(now - 2 * 3_600_000))
    recent = await store.events.emit_event("default", "message", from_epoch_ms(now - 60_000))

    async def deliver(event: dict[str, Any]) -> None:
        pass

    feed = asyncio.create_task(LiveFeed(store, "poll", 0.05, prune_interval=0.05).run(deliver, lambda: False))
    try:
        deadline = time.monotonic() + 5
        while old in [e["_id"] for e in await store.events.events_since(0)] and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
    finally:
        feed.cancel()
        await asyncio.gather(feed, return_exceptions=True)
    assert [e["_id"] for e in await store.events.events_since(0)] == [recent]


async def following(store: Repositories, got: list[dict[str, Any]], thread: Any) -> None:
    """Wait until the feed reports replies (a change stream opens after the feed starts): a probe
    reply is stored until one arrives; then the probes are forgotten."""
    deadline = time.monotonic() + 20
    while not got and time.monotonic() < deadline:
        await reply(store, thread, "probe")
        await delivered_within(got, 1, timeout=0.5)
    assert got, "the feed never reported a reply"
    await asyncio.sleep(0.2)  # the last probes' events
    got.clear()


@pytest.mark.parametrize("mode", ["poll", "change_stream"])
async def test_each_stored_reply_is_its_threads_message_event_once(store: Repositories, mode: str) -> None:
    """A bot's answer writes no event: the consoles and the web chat relay hear of it from the
    reply itself, named, with the inbox whose agents may hear of it."""
    got: list[dict[str, Any]] = []

    async def deliver(event: dict[str, Any]) -> None:
        if event.get("kind") == "message":
            got.append(event)

    _, thread, _ = await record(store, inbound(f"in-{mode}", account="acme"))
    feed = asyncio.create_task(LiveFeed(store, mode, 0.05).run(deliver))
    try:
        await following(store, got, thread)
        in_extra_inbox = dataclasses.replace(thread, inbox_id="inb_support")
        sent = [await reply(store, thread, "one"), await reply(store, in_extra_inbox, "two")]
        await delivered_within(got, 2)
        await asyncio.sleep(0.3)  # later polls re-read the overlap: nothing is delivered twice
        assert [(e["_id"], e["replies"], e["thread_id"], e["account_id"]) for e in got] == [
            (m.id, [m.id], thread.id, "acme") for m in sent
        ]
        assert [e["inbox"] for e in got] == ["first:webchat", "inb_support"]
        assert all("text" not in e for e in got)  # what a reply says is read by those who show it
    finally:
        feed.cancel()
        await asyncio.gather(feed, return_exceptions=True)


async def test_the_feed_goes_on_with_what_an_earlier_release_wrote(store: Repositories, raw_database: Any) -> None:
    """A store written by the release before: its ``message`` events are delivered as before, and
    a reply it stored (with such an event of its own) is not delivered a second time."""
    got: list[dict[str, Any]] = []

    async def deliver(event: dict[str, Any]) -> None:
        got.append(event)

    _, thread, _ = await record(store, inbound("in-upgrade", account="acme"))
    feed = asyncio.create_task(LiveFeed(store, "poll", 0.05).run(deliver))
    try:
        await following(store, got, thread)
        old_event = await store.events.emit_event("acme", "message", utcnow(), thread_id=thread.id, replies=["r"])
        old_reply = Message(
            id=new_id("msg"),
            account_id="acme",
            thread_id=thread.id,
            contact_id=thread.contact_id,
            direction=Direction.OUT,
            channel="webchat",
            text="as the release before stored it",
            created_at=utcnow(),
        )
        send = {"state": "pending", "due_ms": 0, "attempts": 0, "inbox_id": "inb_old"}
        await raw_database.messages.insert_one({**old_reply.to_doc(), "send": send})
        # a reply of this release stored after it: the feed reads replies in time order, so it
        # would read the old one first
        new = await reply(store, thread, "as this release stores it")
        await delivered_within(got, 2)
        assert [e["_id"] for e in got] == [old_event, new.id]
    finally:
        feed.cancel()
        await asyncio.gather(feed, return_exceptions=True)


async def test_a_campaigns_sends_are_not_in_the_feed(store: Repositories) -> None:
    """A campaign sends thousands of messages: none of them refreshes the consoles (the campaign
    sender stores them with ``live=False``), while a reply stored after them is delivered."""
    got: list[dict[str, Any]] = []

    async def deliver(event: dict[str, Any]) -> None:
        got.append(event)

    _, thread, _ = await record(store, inbound("in-campaign", account="acme"))
    feed = asyncio.create_task(LiveFeed(store, "poll", 0.05).run(deliver))
    try:
        await following(store, got, thread)
        for n in range(3):
            await store.outbox.create_outbound(
                dedup_key=f"campaign-{n}",
                thread=thread,
                to=Identity(thread.channel, thread.address or ""),
                text="spring sale",
                sender={"kind": "bot", "campaign": "cmp_1"},
                now=utcnow(),
                live=False,
            )
        answer = await reply(store, thread, "an answer")
        await delivered_within(got, 1)
        await asyncio.sleep(0.2)  # the poll after: nothing more
        assert [e["_id"] for e in got] == [answer.id]
    finally:
        feed.cancel()
        await asyncio.gather(feed, return_exceptions=True)
