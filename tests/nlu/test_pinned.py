"""The pinned versions of a process: a version's load never waits for another's, and concurrent
asks for one version load it once."""

from __future__ import annotations

import asyncio

from bot.nlu.pinned import PinnedModels
from conversations.models import utcnow
from conversations.repositories import Repositories


async def test_a_slow_load_holds_only_its_own_version(store: Repositories) -> None:
    info = {"intents": 2, "examples": 10, "created_by": "test"}
    for version in ("slow", "quick"):
        await store.nlu.save_nlu_model("shop", version, b"model", info, utcnow())
    release = asyncio.Event()
    loads: list[str] = []

    async def load(account_id: str, version: str) -> str:
        loads.append(version)
        if version == "slow":
            await release.wait()  # e.g. a large model read while the training thread is busy
        return f"model {version}"

    pins: PinnedModels[str] = PinnedModels(store, load)
    slow = [asyncio.create_task(pins.get("shop", "slow")) for _ in range(3)]
    assert await asyncio.wait_for(pins.get("shop", "quick"), 5) == "model quick"
    assert not any(task.done() for task in slow)
    release.set()
    assert await asyncio.gather(*slow) == ["model slow"] * 3
    assert sorted(loads) == ["quick", "slow"]  # three asks, one load
    assert await pins.get("shop", "slow") == "model slow" and len(loads) == 2


async def test_closing_stops_a_load_in_flight(store: Repositories) -> None:
    await store.nlu.save_nlu_model(
        "shop", "big", b"model", {"intents": 2, "examples": 10, "created_by": "test"}, utcnow()
    )
    started, stopped = asyncio.Event(), asyncio.Event()

    async def load(account_id: str, version: str) -> str:
        started.set()
        try:
            await asyncio.Event().wait()  # a read that has not answered when the process stops
        finally:
            stopped.set()
        return "never"

    pins: PinnedModels[str] = PinnedModels(store, load)
    asking = asyncio.create_task(pins.get("shop", "big"))
    await asyncio.wait_for(started.wait(), 5)
    await pins.close()
    assert stopped.is_set()  # the load ended with close, not left for the loop's end
    assert pins.peek("shop", "big") is None
    await asyncio.wait([asking], timeout=5)
    assert asking.cancelled()
