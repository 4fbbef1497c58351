"""A campaign of 10,000 contacts sent by a real `omnirouter serve` process at a configured rate, the
process killed with SIGKILL when about a third went out, a new process started on the same store:
counted at the fake Telegram Bot API, nobody gets the message twice, everybody but the few whose
send the kill interrupted gets it once, those few are reported, and the rate is never exceeded."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from bot.services.campaigns import create_campaign
from conversations.campaigns import CampaignState
from conversations.errors import StoreUnavailable
from conversations.models import utcnow
from conversations.outbox import INTERRUPTED
from conversations.repositories import Repositories
from conversations.thread_models import Contact
from conversations.traffic import Identity
from tests.faults.harness import Providers, SharedStore

COUNT, RATE = 10_000, 200.0
ACCOUNT = "default"  # the routers' own account


def chat_of(n: int) -> str:
    return str(500_000 + n)


async def until(check: Callable[[], Awaitable[bool]], timeout: float, what: str) -> None:
    """Wait for ``check``; a store too busy sending the campaign to answer the test is asked again."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if await check():
                return
        except StoreUnavailable:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        await asyncio.sleep(0.05)


def most_in_one_second(times: list[float]) -> int:
    """The most sends in any window of one second (a sliding window over the sorted times)."""
    most, first = 0, 0
    for last, at in enumerate(times):
        while at - times[first] >= 1.0:
            first += 1
        most = max(most, last - first + 1)
    return most


@pytest.mark.slow
@pytest.mark.timeout(600)  # above its own deadlines (150 s + 240 s), so a slow run fails saying which
async def test_a_10000_contact_campaign_across_a_kill_9_sends_nothing_twice_at_its_rate(
    routers: Any, providers: Providers, shared_store: SharedStore, database: str
) -> None:
    started = time.monotonic()
    router = await routers(OMNIROUTER_CAMPAIGNS_RATE=str(RATE), OMNIROUTER_CAMPAIGNS_POLL_INTERVAL="0.2")
    store = Repositories.connect(shared_store.uri, database, timeout_ms=20_000)  # the store is busy
    try:
        now = utcnow()
        await store.contacts.import_contacts(  # one batched insert, straight into the store
            [
                Contact(
                    id=f"con_{n:024d}",
                    account_id=ACCOUNT,
                    created_at=now,
                    updated_at=now,
                    identities=[Identity("telegram", chat_of(n))],
                )
                for n in range(COUNT)
            ]
        )
        campaign = await create_campaign(
            store, None, account_id=ACCOUNT, name="Everyone", channel="telegram", text="Big news"
        )
        telegram = providers.telegram

        async def a_third_sent() -> bool:
            return len(telegram.sent()) >= COUNT // 3

        created = time.monotonic()
        await until(a_third_sent, 150, "a third of the campaign sent")
        killed_pid = router.pid
        await router.kill()
        sent_before_kill = len(telegram.sent())
        await router.start()  # a new process on the same store (the same settings)
        assert router.pid != killed_pid
        restarted = time.monotonic()

        async def done() -> bool:
            state = await store.campaigns.campaign_state(campaign.id)
            return state == CampaignState.DONE and await store.outbox.outbox_pending() == 0

        await until(done, 240, "the campaign done and its outbox empty")
        finished = time.monotonic()
        await asyncio.sleep(0.5)  # a duplicate still in flight would land now
        elapsed = time.monotonic() - started

        got = Counter(str(params["chat_id"]) for params in telegram.sent())
        twice = {chat: n for chat, n in got.items() if n > 1}
        assert twice == {}, f"sent twice: {list(twice.items())[:10]}"
        dead = await store.outbox.dead_letters(ACCOUNT)
        interrupted = {item.to.address for item in dead if item.last_error == INTERRUPTED}
        assert {item.last_error for item in dead} <= {INTERRUPTED}, {item.last_error for item in dead}
        missing = {chat_of(n) for n in range(COUNT)} - set(got)
        assert missing <= interrupted, f"not sent and not reported: {sorted(missing - interrupted)[:10]}"
        assert len(got) + len(missing) == COUNT and set(got) <= {chat_of(n) for n in range(COUNT)}
        assert len(interrupted) < 200  # the sends in flight at the kill (none, if it fell between two)
        assert await store.campaigns.recipient_counts(campaign.id) == {"queued": COUNT}
        assert await store.campaigns.interrupted_count(campaign.id) == len(interrupted)

        times = sorted(call.at for call in telegram.calls if call.method == "sendMessage")
        busiest = most_in_one_second(times)
        # each process paces its starts at RATE; the store batches their writes, so a few arrive
        # together: a margin of a tenth of a second's worth, never a burst of the whole backlog
        assert busiest <= RATE * 1.1, busiest
        print(
            f"\ncampaign kill -9: {COUNT} contacts at {RATE:.0f}/s; {sent_before_kill} sent before the kill; "
            f"{len(interrupted)} interrupted ({len(interrupted & set(got))} of them had reached the fake), "
            f"{len(missing)} not sent; busiest second {busiest}; a third in {restarted - created:.1f} s "
            f"(with the restart), the rest in {finished - restarted:.1f} s; {elapsed:.1f} s in all"
        )
    finally:
        await store.close()
