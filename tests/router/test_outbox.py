"""The outbox: lease contention between workers, backoff with retry-after, dead letters."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from pymongo.errors import OperationFailure

from bot.handlers.kit.protocol import BaseAdapter, PermanentSendError, RetryableSendError
from bot.metrics import Metrics
from bot.router.dispatch import Dispatcher
from bot.router.leasing import lease_and_work
from bot.router.outbox import Outbox
from bot.router.queue import Queue
from bot.router.send_failures import backoff_delay
from bot.router.sweeper import DispatchSweeper
from bot.sending_settings import OutboxSettings
from bot.services.contacts import erase_contact, find_contact
from conversations.embedded import EmbeddedMongo
from conversations.models import utcnow
from conversations.repositories import Repositories
from conversations.thread_models import OutboxItem, OutboxState, Thread
from conversations.traffic import DeliveryStatus, Identity, Outbound
from tests import factories
from tests.conftest import make_settings
from tests.factories import inbound, record
from tests.router.test_inbound import wait_for


class RecordingChannel(BaseAdapter):
    """A channel whose provider accepts everything and remembers it; ``failures`` scripts errors."""

    name = "webchat"

    def __init__(self, failures: list[Exception] | None = None, delay: float = 0.0) -> None:
        self.sent: list[str] = []
        self.attempt_times: list[float] = []
        self.failures = list(failures or [])
        self.delay = delay

    async def send(self, outbound: Outbound) -> str:
        self.attempt_times.append(time.monotonic())
        if self.delay:
            await asyncio.sleep(self.delay * random.random())
        if self.failures:
            raise self.failures.pop(0)
        self.sent.append(outbound.message_id)
        return f"p-{outbound.message_id}"


async def stopped(*workers: asyncio.Task[Any]) -> None:
    """Cancel workers and wait for them to end: one that does not end within 10 s fails the test
    with where it waits (it would otherwise hang the suite at ``gather``)."""
    for worker in workers:
        worker.cancel()
    _, stuck = await asyncio.wait(set(workers), timeout=10)
    if stuck:
        frames = "".join(
            f"  {f.f_code.co_filename}:{f.f_lineno} {f.f_code.co_name}\n" for w in stuck for f in w.get_stack()
        )
        pytest.fail(f"{len(stuck)} worker(s) did not end when cancelled; waiting at:\n{frames}")


def outbox_settings(**values: Any) -> OutboxSettings:
    base = {"poll_interval": 0.02, "base_delay": 0.01, "max_delay": 0.02, "lease_seconds": 30, "max_attempts": 8}
    base.update(values)
    return OutboxSettings(**base)


async def make_items(store: Repositories, count: int) -> tuple[Thread, list[str]]:
    _, thread, _ = await record(store, inbound())
    ids = []
    for n in range(count):
        message = await store.outbox.create_outbound(
            dedup_key=f"item-{n}",
            thread=thread,
            to=Identity("webchat", "alice"),
            text=f"reply {n}",
            sender={"kind": "bot"},
            now=utcnow(),
        )
        ids.append(message.id)
    return thread, ids


async def test_many_workers_send_each_item_exactly_once(store: Repositories, embedded: Any, db_name: str) -> None:
    _, ids = await make_items(store, 200)
    channel = RecordingChannel(delay=0.005)
    stores = [Repositories.connect(embedded.uri, db_name) for _ in range(6)]  # six "processes"
    workers = [Outbox(s, {"webchat": channel}, Metrics(), outbox_settings(concurrency=4)) for s in stores]
    tasks = [asyncio.create_task(w.run()) for w in workers]
    try:
        await wait_for(lambda: _count(store, state="sent", expected=200), timeout=30)
    finally:
        await stopped(*tasks)
        for s in stores:
            await s.close()
    counts = Counter(channel.sent)
    assert set(counts) == set(ids)
    assert max(counts.values()) == 1, [k for k, v in counts.items() if v > 1]


async def _count(store: Repositories, state: str, expected: int) -> bool:
    return len(await factories.outbox(store, state=OutboxState(state))) == expected


async def test_retry_after_is_honoured_then_the_send_succeeds(store: Repositories) -> None:
    _, ids = await make_items(store, 1)
    # a second long enough that a loaded machine does not reach it between two calls
    channel = RecordingChannel(failures=[RetryableSendError("429 too many requests", retry_after=1.0)])
    outbox = Outbox(store, {"webchat": channel}, Metrics(), outbox_settings())
    assert await outbox.send_due() == 1
    item = (await store.outbox.list_outbox(None))[0]
    assert item.state == "pending" and item.last_error == "429 too many requests"
    assert await outbox.send_due() == 0  # not due before retry_after
    await asyncio.sleep(1.05)
    assert await outbox.send_due() == 1
    assert channel.sent == ids
    assert channel.attempt_times[1] - channel.attempt_times[0] >= 1.0


async def test_dead_letter_after_max_attempts_is_visible_and_retryable_through_the_api(
    store: Repositories, embedded: Any, db_name: str, start_client: Any
) -> None:
    # the app's own worker only looks when woken, so it does not race the failing worker below
    client = await start_client(make_settings(embedded.uri, db_name, outbox={"poll_interval": 60}))
    _, ids = await make_items(store, 1)
    failing = RecordingChannel(failures=[RetryableSendError("503 from provider")] * 3)
    outbox = Outbox(store, {"webchat": failing}, Metrics(), outbox_settings(max_attempts=3, max_delay=0.001))
    for _ in range(3):
        await asyncio.sleep(0.01)
        await outbox.send_due()
    response = await client.get("/api/outbox", params={"state": "dead"})
    assert response.status == 200
    items = (await response.json())["items"]
    assert [(i["message_id"], i["attempts"], i["last_error"]) for i in items] == [(ids[0], 3, "503 from provider")]
    message = await store.messages.get_message(ids[0])
    assert message.delivery_status == DeliveryStatus.FAILED

    retried = await client.post(f"/api/outbox/{items[0]['id']}/retry")
    assert retried.status == 200 and (await retried.json())["state"] == "pending"
    again = await client.post(f"/api/outbox/{items[0]['id']}/retry")
    assert again.status == 409  # not dead any more
    await wait_for(lambda: _count(store, state="sent", expected=1))  # the app's own worker sends it
    assert (await client.post("/api/outbox/obx_missing/retry")).status == 404


async def test_a_permanent_error_dead_letters_at_once(store: Repositories) -> None:
    await make_items(store, 1)
    channel = RecordingChannel(failures=[PermanentSendError("recipient blocked the bot")])
    outbox = Outbox(store, {"webchat": channel}, Metrics(), outbox_settings())
    await outbox.send_due()
    [item] = await store.outbox.list_outbox(None)
    assert item.state == "dead" and item.attempts == 1 and "recipient blocked" in item.last_error


async def test_an_unknown_channel_is_a_dead_letter_not_a_crash(store: Repositories) -> None:
    await make_items(store, 1)
    outbox = Outbox(store, {}, Metrics(), outbox_settings())
    await outbox.send_due()
    [item] = await store.outbox.list_outbox(None)
    assert item.state == "dead" and "not configured" in item.last_error


def test_backoff_grows_is_capped_and_respects_retry_after() -> None:
    rng = random.Random(7)
    delays = [backoff_delay(n, base=1.0, cap=60.0, rng=rng) for n in range(1, 10)]
    for n, delay in enumerate(delays, start=1):
        ceiling = min(60.0, 2 ** (n - 1))
        assert ceiling / 2 <= delay <= ceiling
    assert backoff_delay(1, base=1.0, cap=60.0, retry_after=42.0) == 42.0
    assert len({round(backoff_delay(5, 1.0, 60.0), 6) for _ in range(20)}) > 1  # jittered


async def test_a_reply_enqueued_while_the_worker_runs_is_sent_at_once_and_recovered_if_its_sender_dies(
    store: Repositories, embedded: Any, db_name: str
) -> None:
    _, thread, _ = await record(store, inbound())
    channel = RecordingChannel()
    outbox = Outbox(store, {"webchat": channel}, Metrics(), outbox_settings(poll_interval=60, lease_seconds=1))
    worker = asyncio.create_task(outbox.run())
    try:
        await asyncio.sleep(0.05)  # the worker found nothing and sleeps until the next poll
        sent = await outbox.enqueue_reply(
            dedup_key="now", thread=thread, to=Identity("webchat", "alice"), text="at once", sender={"kind": "bot"}
        )
        await wait_for(lambda: _count(store, state="sent", expected=1), timeout=5)  # no poll, no wake-up
        assert channel.sent == [sent.id]
        # a process that stored a reply leased to itself and died before sending it
        dead = Repositories.connect(embedded.uri, db_name)
        orphan, item = await dead.outbox.store_outbound(
            dedup_key="orphan",
            thread=thread,
            to=Identity("webchat", "alice"),
            text="lost?",
            sender={"kind": "bot"},
            now=utcnow(),
            leased_by=("worker-that-died", timedelta(seconds=1)),
        )
        await dead.close()
        assert item is not None and item.lease_owner == "worker-that-died" and item.attempts == 1
        outbox.wake()
        await asyncio.sleep(0.3)
        assert channel.sent == [sent.id]  # its lease still holds: nobody else sends it yet
    finally:
        await stopped(worker)
    rescuer = Outbox(store, {"webchat": channel}, Metrics(), outbox_settings())
    await asyncio.sleep(0.8)
    assert await rescuer.send_due() == 1
    assert channel.sent == [sent.id, orphan.id]
    assert (await store.outbox.get_outbox(item.id)).attempts == 2  # type: ignore[union-attr]


class SteadyChannel(RecordingChannel):
    """A provider that takes exactly ``seconds`` to answer every send."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds

    async def send(self, outbound: Outbound) -> str:
        await asyncio.sleep(self.seconds)
        return await super().send(outbound)


async def test_a_reply_that_waits_for_a_sending_slot_past_its_lease_is_still_sent_once(
    store: Repositories, embedded: Any, db_name: str
) -> None:
    """Under load, replies this process stored leased to itself queue for its sending slots; once
    the wait outlasts their lease, another process's worker takes them over, and this process
    must not send them as well when their turn for a slot comes."""
    _, thread, _ = await record(store, inbound())
    provider = SteadyChannel(0.25)  # one provider, two router processes sending to it
    busy = Outbox(
        store, {"webchat": provider}, Metrics(), outbox_settings(poll_interval=60, lease_seconds=1, concurrency=1)
    )
    other_store = Repositories.connect(embedded.uri, db_name)
    other = Outbox(other_store, {"webchat": provider}, Metrics(), outbox_settings(poll_interval=0.05))
    workers = [asyncio.create_task(busy.run()), asyncio.create_task(other.run())]
    try:
        await asyncio.sleep(0.05)
        # eight replies at once; one slot at 0.25 s a send: the last ones wait 1 s and more
        replies = await asyncio.gather(
            *(
                busy.enqueue_reply(
                    dedup_key=f"burst-{n}",
                    thread=thread,
                    to=Identity("webchat", "alice"),
                    text=f"reply {n}",
                    sender={"kind": "bot"},
                )
                for n in range(8)
            )
        )
        await wait_for(lambda: _count(store, state="sent", expected=8), timeout=10)
        await busy.drain()
        await asyncio.sleep(0.3)  # a duplicate send still in flight would land now
    finally:
        await stopped(*workers)
        await other_store.close()
    counts = Counter(provider.sent)
    assert set(counts) == {reply.id for reply in replies}
    assert [k for k, v in counts.items() if v > 1] == []


async def test_a_send_slower_than_the_lease_is_not_taken_over_and_sent_again(store: Repositories) -> None:
    """A large upload can take longer than the lease; meanwhile the item is still this worker's,
    and no worker (this process's own included) may lease it and send it a second time."""
    _, ids = await make_items(store, 1)
    # renewed every third of the lease: 2 s leaves a loaded machine's event loop 1.3 s of stall
    # between two renewals before the lease runs out
    provider = SteadyChannel(5)  # two and a half leases
    outbox = Outbox(store, {"webchat": provider}, Metrics(), outbox_settings(lease_seconds=2, concurrency=4))
    worker = asyncio.create_task(outbox.run())
    try:
        await wait_for(lambda: _count(store, state="sent", expected=1), timeout=15)
        await asyncio.sleep(0.5)  # a second send started meanwhile would still be in flight
        await outbox.drain()
    finally:
        await stopped(worker)
    assert provider.sent == ids
    [item] = await store.outbox.list_outbox(None)
    assert item.state == "sent" and item.attempts == 1


async def test_a_wake_up_during_an_empty_lease_query_is_not_lost(store: Repositories) -> None:
    """An item stored while the worker's lease query is on its way back empty-handed (its wake-up
    arrives before the worker goes to sleep) is sent at once, not a poll interval later."""
    _, thread, _ = await record(store, inbound())
    channel = RecordingChannel()
    outbox = Outbox(store, {"webchat": channel}, Metrics(), outbox_settings(poll_interval=60))
    lease = timedelta(seconds=30)
    arrived: list[str] = []

    async def lease_while_a_reply_arrives() -> OutboxItem | None:
        item = await store.outbox.lease_outbox(outbox.owner, utcnow(), lease)
        if item is None and not arrived:  # another request stores a reply and wakes the worker
            reply = await store.outbox.create_outbound(
                dedup_key="late",
                thread=thread,
                to=Identity("webchat", "alice"),
                text="hello",
                sender={"kind": "bot"},
                now=utcnow(),
            )
            arrived.append(reply.id)
            outbox.wake()
        return item

    await work_until_one_is_sent(store, outbox, lease_while_a_reply_arrives, poll_interval=60, timeout=5)
    assert channel.sent == arrived


async def work_until_one_is_sent(
    store: Repositories,
    outbox: Outbox,
    lease: Callable[[], Awaitable[OutboxItem | None]],
    poll_interval: float,
    timeout: float,
) -> None:
    """Run the outbox's worker loop on ``lease`` until one item is sent (or fail after ``timeout``)."""
    worker = asyncio.create_task(
        lease_and_work(
            lease,
            outbox._send_and_release,
            slots=outbox._slots,
            wake=outbox._wake,
            poll_interval=poll_interval,
            in_flight=set(),
            on_outage=lambda: None,
        )
    )
    try:
        await wait_for(lambda: _count(store, state="sent", expected=1), timeout=timeout)
    finally:
        await stopped(worker)


async def test_the_worker_outlives_an_unexpected_store_error(store: Repositories) -> None:
    """A store answer other than an outage (here an OperationFailure on one lease) is logged and
    the worker goes on leasing; before, the exception ended the outbox worker for good."""
    _, thread, _ = await record(store, inbound())
    channel = RecordingChannel()
    outbox = Outbox(store, {"webchat": channel}, Metrics(), outbox_settings(poll_interval=0.05))
    reply = await store.outbox.create_outbound(
        dedup_key="after-error",
        thread=thread,
        to=Identity("webchat", "alice"),
        text="hello",
        sender={"kind": "bot"},
        now=utcnow(),
    )
    failed: list[bool] = []

    async def lease_failing_once() -> OutboxItem | None:
        if not failed:
            failed.append(True)
            raise OperationFailure("an unexpected answer from the store")
        return await store.outbox.lease_outbox(outbox.owner, utcnow(), timedelta(seconds=30))

    await work_until_one_is_sent(store, outbox, lease_failing_once, poll_interval=0.05, timeout=10)
    assert failed == [True] and channel.sent == [reply.id]


async def test_workers_end_when_their_store_is_closed(embedded: Any, db_name: str) -> None:
    """A worker that missed its cancellation at shutdown (the driver can swallow one) ends once the
    store is closed, instead of retrying a closed client for the rest of the process."""
    own = Repositories.connect(embedded.uri, db_name)
    outbox = Outbox(own, {"webchat": RecordingChannel()}, Metrics(), outbox_settings(poll_interval=0.05))
    sweeper = DispatchSweeper(own, Dispatcher(own, Queue(own), outbox, Metrics(), "noted"), 0.05, timedelta(seconds=30))
    workers = [asyncio.create_task(outbox.run()), asyncio.create_task(sweeper.run())]
    await asyncio.sleep(0.2)
    await own.close()
    async with asyncio.timeout(10):
        results = await asyncio.gather(*workers, return_exceptions=True)
    assert results == [None, None]


async def test_a_worker_cancelled_as_it_is_woken_stops(store: Repositories) -> None:
    """Shutdown cancels the worker while a reply wakes it: on Python 3.11, ``asyncio.wait_for``
    returned the wake-up and dropped the cancellation, and the worker leased on for the rest of
    the process (a CI run hung on such a worker)."""
    outbox = Outbox(store, {"webchat": RecordingChannel()}, Metrics(), outbox_settings(poll_interval=60))
    worker = asyncio.create_task(outbox.run())
    await asyncio.sleep(0.3)  # the lease came back empty: the worker sleeps until woken
    outbox.wake()
    worker.cancel()
    done, _ = await asyncio.wait({worker}, timeout=5)
    assert done == {worker} and worker.cancelled()


async def test_a_worker_whose_cancellation_a_store_call_swallowed_stops(store: Repositories) -> None:
    """A driver retrying a lost connection can catch the cancellation and answer as if nothing
    happened; the request stays counted on the task, and the worker ends at its next round."""
    swallowed: list[bool] = []

    async def lease_swallowing_a_cancellation() -> OutboxItem | None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            swallowed.append(True)
        return None

    worker = asyncio.create_task(
        lease_and_work(
            lease_swallowing_a_cancellation,
            Outbox(store, {}, Metrics(), outbox_settings())._send_and_release,
            slots=asyncio.Semaphore(1),
            wake=asyncio.Event(),
            poll_interval=0.02,
            in_flight=set(),
            on_outage=lambda: None,
        )
    )
    await asyncio.sleep(0.1)
    worker.cancel()
    done, _ = await asyncio.wait({worker}, timeout=5)
    if not done:
        worker.cancel()  # let the old loop go: it would lease (and swallow) once more
    assert swallowed == [True] and done == {worker} and worker.cancelled()


class FreezingChannel(RecordingChannel):
    """A provider that takes the message, after which the store stops answering (SIGSTOP) for
    ``seconds``: the send happened, recording it cannot, for longer than the lease."""

    def __init__(self, store_pid: int, seconds: float) -> None:
        super().__init__()
        self.store_pid = store_pid
        self.seconds = seconds

    async def send(self, outbound: Outbound) -> str:
        provider_id = await super().send(outbound)
        os.kill(self.store_pid, signal.SIGSTOP)
        asyncio.get_running_loop().call_later(self.seconds, os.kill, self.store_pid, signal.SIGCONT)
        return provider_id


async def test_a_sent_item_whose_record_waits_for_a_frozen_store_is_not_sent_again(tmp_path: Path) -> None:
    """The provider took the message, then the store hung for over two leases: the worker keeps
    asking the store to record the send instead of leaving the item pending, and a lease of the
    item meanwhile (this process's own worker, once the store is back) does not send it again.
    Before, the failed record ended the send as a crash and the item went out twice."""
    server = EmbeddedMongo(tmp_path / "store")
    await server.start()
    store = Repositories.connect(server.uri, "frozen", timeout_ms=300)
    worker: asyncio.Task[None] | None = None
    try:
        await store.ensure_indexes()
        _, ids = await make_items(store, 1)
        pid = int((tmp_path / "store" / "nx-27017.pid").read_text())
        provider = FreezingChannel(pid, seconds=2.5)
        outbox = Outbox(store, {"webchat": provider}, Metrics(), outbox_settings(lease_seconds=1, poll_interval=0.05))
        worker = asyncio.create_task(outbox.run())
        while not provider.sent:
            await asyncio.sleep(0.05)
        await asyncio.sleep(provider.seconds + 0.5)  # the store is back
        await wait_for(lambda: _count(store, state="sent", expected=1), timeout=20)
        await asyncio.sleep(1.5)  # a lease taken after the outage would have sent it again by now
        await outbox.drain()
        assert provider.sent == ids
        [item] = await store.outbox.list_outbox(None)
        assert item.state == "sent"  # its attempts may say 2: the worker leased it again, and let it be
    finally:
        if worker is not None:
            await stopped(worker)
        await store.close()
        await server.stop()


async def test_erasing_the_contact_cancels_its_replies_not_yet_sent(store: Repositories) -> None:
    """A reply's send state is on the message: erasing the contact deletes both, so a worker finds
    nothing left to send, and other contacts' replies go out as before."""
    thread, ids = await make_items(store, 2)
    _, bobs, _ = await record(store, inbound("m2", address="bob"))
    kept = await factories.reply(store, bobs, "for bob")
    await erase_contact(store, await find_contact(store, "acme", thread.contact_id), "cli")
    channel = RecordingChannel()
    assert await Outbox(store, {"webchat": channel}, Metrics(), outbox_settings()).send_due() == 1
    assert channel.sent == [kept.id]
    assert [await store.messages.get_message(i) for i in ids] == [None, None]
