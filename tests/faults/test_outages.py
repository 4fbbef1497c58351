"""Outages under load: the store stopped for 10 s, provider APIs down or answering 429/500."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter, defaultdict
from typing import Any
from urllib.parse import urlparse

import aiohttp
import pytest

from tests.faults.harness import Load, Providers, SharedStore, message, mixed_traffic, settle
from tests.faults.test_processes import check_once, provider_view


async def status_of(url: str) -> int | str:
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
            async with session.get(url) as response:
                return response.status
    except aiohttp.ClientError as exc:
        return type(exc).__name__


@pytest.mark.slow
async def test_a_10_s_store_outage_answers_503_and_heals_without_a_restart(
    routers: Any, providers: Providers, shared_store: SharedStore, database: str
) -> None:
    router = await routers()
    pid = router.pid
    requests = mixed_traffic(180, 12)
    load = Load([router.url], retry_pause=0.3)
    running = asyncio.create_task(load.run(requests, concurrency=6, rate=12))  # about 15 s of traffic
    await asyncio.sleep(2.5)
    await shared_store.stop()
    stopped = time.monotonic()
    await asyncio.sleep(2)
    assert await status_of(f"{router.url}/healthz") == 503
    await asyncio.sleep(10 - (time.monotonic() - stopped))
    await shared_store.start()
    await running

    statuses = load.statuses()
    assert statuses[503] > 0 and not [s for s in statuses if isinstance(s, int) and s >= 500 and s != 503], statuses
    assert not [s for s in statuses if isinstance(s, str)], statuses  # the router itself never went away
    assert max(d.slowest for d in load.deliveries.values()) < 5  # an outage is answered, not waited out
    assert router.pid == pid and router.process is not None and router.process.returncode is None
    state = await settle(shared_store.uri, database)
    check_once(state, len(requests), 4 * 12)  # nothing half-written, nothing twice
    assert await status_of(f"{router.url}/healthz") == 200
    print(
        f"\nstore outage: answers {dict(statuses)}; slowest answer "
        f"{max(d.slowest for d in load.deliveries.values()):.2f} s"
    )


def retry_gaps(providers: Providers) -> list[float]:
    """For each Telegram call answered 429, seconds until the next call to the same chat."""
    calls = defaultdict(list)
    for call in providers.telegram.calls:
        if call.method == "sendMessage":
            calls[call.params["chat_id"]].append(call)
    return [
        later.at - call.at for chat in calls.values() for call, later in itertools.pairwise(chat) if call.status == 429
    ]


@pytest.mark.slow
async def test_provider_failures_are_retried_with_backoff_and_dead_letters_are_visible(
    routers: Any, providers: Providers, shared_store: SharedStore, database: str
) -> None:
    router = await routers(OMNIROUTER_OUTBOX_MAX_ATTEMPTS="8")
    providers.telegram.fail_next(429, times=4, retry_after=1)
    providers.whatsapp.fail_next(500, times=4)
    providers.twilio.failures = [(500, {"code": 20500, "message": "Internal Server Error"})] * 2
    requests = mixed_traffic(120, 10)
    running = asyncio.create_task(Load([router.url]).run(requests, concurrency=8, rate=40))
    await asyncio.sleep(0.5)
    twilio_port = urlparse(providers.twilio.url).port or 0
    await providers.twilio.stop()  # Twilio unreachable for 2 s
    await asyncio.sleep(2)
    await providers.twilio.start(port=twilio_port)
    await running

    state = await settle(shared_store.uri, database)
    check_once(state, len(requests), 4 * 10)  # nothing lost, nothing dead, nothing twice
    got, attempts = provider_view(state, providers)
    assert set(got.values()) == {1} and max(attempts.values()) > 1
    gaps = retry_gaps(providers)
    assert len(gaps) == 4 and min(gaps) >= 0.95, gaps  # Telegram's retry_after of 1 s honoured

    # a provider that keeps failing: dead-lettered after outbox.max_attempts, visible, retryable
    providers.whatsapp.fail_next(500, times=8)
    number = "16505559999"
    await Load([router.url]).run([message("whatsapp", 9_000, 9_999)], concurrency=1)
    async with aiohttp.ClientSession(headers=router.api_headers()) as session:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            async with session.get(f"{router.url}/api/outbox?state=dead") as response:
                dead = (await response.json())["items"]
            if dead:
                break
            await asyncio.sleep(0.2)
        [item] = dead
        assert item["attempts"] == 8 and "131000" in item["last_error"] and item["to"]["address"] == number
        calls = [r for r in providers.whatsapp.requests if r.body.get("to") == number]
        assert len(calls) == 8 and {r.status for r in calls} == {500}
        async with session.post(f"{router.url}/api/outbox/{item['id']}/retry") as response:
            assert response.status == 200
    await settle(shared_store.uri, database)
    assert Counter(r.status for r in providers.whatsapp.requests if r.body.get("to") == number) == {500: 8, 200: 1}
