"""The live feed that follows the event log for the consoles connected to a process: every event
once, however busy the log; no reading at all while no console is connected."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bot.web.console.live import LiveFeed
from conversations.models import from_epoch_ms, utcnow
from conversations.repositories import Repositories


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
