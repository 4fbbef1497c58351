"""An outbox item whose sender died mid-attempt: an ordinary reply is sent again (at least once), an
``at_most_once`` one (a campaign message) is given up as interrupted (never twice)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from bot.handlers.kit.protocol import RetryableSendError
from bot.metrics import Metrics
from bot.router.outbox import Outbox
from conversations.errors import StoreUnavailable
from conversations.models import utcnow
from conversations.outbox import INTERRUPTED
from conversations.repositories import Repositories
from conversations.thread_models import Message, OutboxState, Thread
from conversations.traffic import DeliveryStatus, Identity
from tests.factories import inbound, record
from tests.router.test_outbox import RecordingChannel, outbox_settings, stopped

ALICE = Identity("webchat", "alice")
SHORT = timedelta(seconds=0.3)


async def stored(
    store: Repositories,
    thread: Thread,
    key: str,
    *,
    at_most_once: bool = True,
    leased_by: tuple[str, timedelta] | None = None,
) -> Message:
    """An item stored to be leased by a worker (as a campaign message is), or already leased."""
    message, item = await store.outbox.store_outbound(
        dedup_key=key,
        thread=thread,
        to=ALICE,
        text=key,
        sender={"kind": "bot"},
        now=utcnow(),
        leased_by=leased_by,
        at_most_once=at_most_once,
    )
    assert item is not None
    return message


async def orphan(store: Repositories, thread: Thread, key: str, *, at_most_once: bool) -> str:
    """An item stored leased by a process that then died (the direct path); its message id."""
    return (await stored(store, thread, key, at_most_once=at_most_once, leased_by=("worker-that-died", SHORT))).id


async def test_a_campaign_item_whose_sender_died_is_reported_interrupted_and_a_reply_is_sent_again(
    store: Repositories,
) -> None:
    _, thread, _ = await record(store, inbound())
    reply = await orphan(store, thread, "reply", at_most_once=False)
    campaign = await orphan(store, thread, "campaign", at_most_once=True)
    channel = RecordingChannel()
    rescuer = Outbox(store, {"webchat": channel}, Metrics(), outbox_settings())
    assert await rescuer.send_due() == 0  # the dead process's leases still hold
    await asyncio.sleep(0.4)
    assert await rescuer.send_due() == 2
    assert channel.sent == [reply]  # at least once: the reply again; the campaign message never
    [dead] = await store.outbox.list_outbox(OutboxState.DEAD)
    assert dead.message_id == campaign and dead.last_error == INTERRUPTED and dead.lease_owner is None
    message = await store.messages.get_message(campaign)
    assert message is not None and message.delivery_status is DeliveryStatus.FAILED


async def test_an_item_leased_from_the_store_whose_worker_died_is_interrupted_too(store: Repositories) -> None:
    _, thread, _ = await record(store, inbound())
    await stored(store, thread, "leased")
    leased = await store.outbox.lease_outbox("worker-that-died", utcnow(), SHORT)
    assert leased is not None and leased.lapsed_owner is None and leased.attempts == 1
    await asyncio.sleep(0.4)
    again = await store.outbox.lease_outbox("rescuer", utcnow(), SHORT)
    assert again is not None and again.lapsed_owner == "worker-that-died" and again.attempts == 2
    assert (await store.outbox.get_outbox(again.id)).lease_owner == "rescuer"  # type: ignore[union-attr]
    assert "lapsed_owner" not in again.to_doc()


async def test_a_campaign_item_whose_send_failed_is_retried_as_usual_and_sent_once(store: Repositories) -> None:
    """An attempt whose outcome was recorded (a retry) is not an interrupted one."""
    _, thread, _ = await record(store, inbound())
    message = await stored(store, thread, "flaky")
    channel = RecordingChannel(failures=[RetryableSendError("503 from provider")])
    # the retry waits 0.5-1 s: long enough not to come due within the first call on a loaded machine
    outbox = Outbox(store, {"webchat": channel}, Metrics(), outbox_settings(base_delay=1.0, max_delay=1.0))
    assert await outbox.send_due() == 1
    await asyncio.sleep(1.05)
    assert await outbox.send_due() == 1
    assert channel.sent == [message.id]
    [item] = await store.outbox.list_outbox(OutboxState.SENT)
    assert item.attempts == 2 and item.lease_owner is None


async def test_a_campaign_item_sent_by_a_running_worker_is_sent_once_at_once(store: Repositories) -> None:
    _, thread, _ = await record(store, inbound())
    channel = RecordingChannel()
    outbox = Outbox(store, {"webchat": channel}, Metrics(), outbox_settings(poll_interval=60))
    worker: asyncio.Task[Any] = asyncio.create_task(outbox.run())
    try:
        await asyncio.sleep(0.05)
        message = await outbox.enqueue_reply(
            dedup_key="direct", thread=thread, to=ALICE, text="hi", sender={"kind": "bot"}, at_most_once=True
        )
        for _ in range(100):
            if channel.sent:
                break
            await asyncio.sleep(0.02)
        await outbox.drain()
    finally:
        await stopped(worker)
    assert channel.sent == [message.id]
    [item] = await store.outbox.list_outbox(OutboxState.SENT)
    assert item.at_most_once is True and item.attempts == 1


async def test_at_most_once_costs_no_store_call_more_per_message(embedded: Any, db_name: str) -> None:
    """The mark of a send in flight rides on the writes that lease the item and record its outcome."""
    commands: list[str] = []
    store = Repositories.connect(embedded.uri, db_name, on_command=commands.append)
    try:
        _, thread, _ = await record(store, inbound())
        outbox = Outbox(store, {"webchat": RecordingChannel()}, Metrics(), outbox_settings())
        calls = {}
        for at_most_once in (False, True):
            commands.clear()
            await stored(store, thread, f"cost-{at_most_once}", at_most_once=at_most_once)
            assert await outbox.send_due() == 1
            calls[at_most_once] = list(commands)
        assert "findAndModify" in calls[False] and calls[True] == calls[False], calls
    finally:
        await store.close()


class GatedChannel(RecordingChannel):
    """A provider whose first send waits until ``gate`` is set: every sending slot stays busy."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()

    async def send(self, outbound: Any) -> str:
        if not self.sent and not self.gate.is_set():
            await self.gate.wait()
        return await super().send(outbound)


async def test_a_campaign_item_that_waited_past_its_lease_for_a_slot_is_sent_not_given_up(store: Repositories) -> None:
    """An item whose send has not started is not an interrupted attempt, however long it waited for a
    sending slot (here the worker's own loop, queued for the slot first, leases it once free)."""
    _, thread, _ = await record(store, inbound())
    channel = GatedChannel()
    outbox = Outbox(store, {"webchat": channel}, Metrics(), outbox_settings(concurrency=1, lease_seconds=0.3))
    worker: asyncio.Task[Any] = asyncio.create_task(outbox.run())
    try:
        await asyncio.sleep(0.05)
        reply = await outbox.enqueue_reply(dedup_key="slow", thread=thread, to=ALICE, text="a", sender={"kind": "bot"})
        await asyncio.sleep(0.1)  # the worker's loop polls and queues for the one slot the slow send holds
        campaign = await outbox.enqueue_reply(
            dedup_key="campaign", thread=thread, to=ALICE, text="b", sender={"kind": "bot"}, at_most_once=True
        )
        await asyncio.sleep(0.5)  # longer than a lease
        channel.gate.set()
        for _ in range(200):
            if len(channel.sent) == 2:
                break
            await asyncio.sleep(0.02)
        await outbox.drain()
    finally:
        await stopped(worker)
    assert channel.sent == [reply.id, campaign.id]
    assert await store.outbox.list_outbox(OutboxState.DEAD) == []


async def test_a_worker_stopped_while_a_lease_is_in_flight_sends_that_item_and_leases_no_more(
    store: Repositories,
) -> None:
    """Shutdown stops the worker between two leases: a lease the store has written when the stop
    comes is answered and its item sent, not left leased with no task to send it."""
    _, thread, _ = await record(store, inbound())
    message = await stored(store, thread, "c")
    channel = RecordingChannel()
    outbox = Outbox(store, {"webchat": channel}, Metrics(), outbox_settings(poll_interval=0.02))
    lease, leased, answer = store.outbox.lease_outbox, asyncio.Event(), asyncio.Event()

    async def slow_answer(*args: Any, **kwargs: Any) -> Any:  # the store's answer on its way
        item = await lease(*args, **kwargs)
        if item is not None:
            leased.set()
            await answer.wait()
        return item

    store.outbox.lease_outbox = slow_answer  # type: ignore[method-assign]
    worker: asyncio.Task[Any] = asyncio.create_task(outbox.run())
    try:
        await asyncio.wait_for(leased.wait(), 5)
        stopping = asyncio.create_task(outbox.stop())
        await asyncio.sleep(0.05)
        answer.set()
        await asyncio.wait_for(stopping, 15)
        assert worker.done()
        later = await outbox.enqueue_reply(
            dedup_key="later", thread=thread, to=ALICE, text="c", sender={"kind": "bot"}, at_most_once=True
        )
        await asyncio.sleep(0.1)
    finally:
        await stopped(worker)
    assert channel.sent == [message.id]  # not later's: the worker leases no more
    assert [item.message_id for item in await store.outbox.list_outbox(OutboxState.PENDING)] == [later.id]
    assert (await store.outbox.get_outbox(later.id)).lease_owner is None  # type: ignore[union-attr]


async def test_a_campaign_item_whose_lease_answer_this_worker_lost_is_sent_when_it_leases_it_again(
    store: Repositories,
) -> None:
    """The store wrote this worker's lease and the answer never came (a timeout after the write): no
    attempt began, so when the lease runs out and the worker leases the item again, it sends it."""
    _, thread, _ = await record(store, inbound())
    message = await stored(store, thread, "lost")
    channel = RecordingChannel()
    outbox = Outbox(store, {"webchat": channel}, Metrics(), outbox_settings())
    assert await store.outbox.lease_outbox(outbox.owner, utcnow(), SHORT) is not None  # its answer lost
    await asyncio.sleep(0.4)  # the lease runs out
    assert await outbox.send_due() == 1
    assert channel.sent == [message.id]
    assert await store.outbox.list_outbox(OutboxState.DEAD) == []


async def test_a_campaign_item_whose_outcome_this_worker_failed_to_record_is_not_sent_again(
    store: Repositories,
) -> None:
    """This worker sent the item and could not record it (the store away past the retries): when
    the lease runs out and it leases the item again, it reports it interrupted, not sent twice."""
    _, thread, _ = await record(store, inbound())
    message = await stored(store, thread, "unrecorded")
    channel = RecordingChannel()
    outbox = Outbox(store, {"webchat": channel}, Metrics(), outbox_settings(lease_seconds=1))
    item = await store.outbox.lease_outbox(outbox.owner, utcnow(), SHORT)
    assert item is not None

    async def unrecorded(*_: Any) -> bool:
        raise StoreUnavailable("the store went away after the send")

    outbox._record_sent = unrecorded  # type: ignore[method-assign]
    with pytest.raises(StoreUnavailable):
        await outbox._send(item)
    assert channel.sent == [message.id]
    await asyncio.sleep(0.4)  # the lease runs out
    assert await outbox.send_due() == 1
    assert channel.sent == [message.id]
    [dead] = await store.outbox.list_outbox(OutboxState.DEAD)
    assert dead.message_id == message.id and dead.last_error == INTERRUPTED
