"""The decision point, and recovery of messages whose dispatch died with its process."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from aiohttp.test_utils import TestClient
from pymongo.errors import OperationFailure

from bot.keys import DISPATCHER, PIPELINE, STORE
from bot.router.inbound import InboundRecorder
from bot.settings import Settings
from conversations.models import utcnow
from conversations.repositories import Repositories
from conversations.thread_models import DecisionAction, OutboxState, ThreadStatus
from conversations.traffic import DeliveryStatus, Identity, Inbound
from tests import factories
from tests.router.test_inbound import wait_for

SHORT = timedelta(milliseconds=200)


def inbound(external_id: str, address: str = "v-bob") -> Inbound:
    return Inbound(
        account_id="default",
        channel="webchat",
        external_id=external_id,
        sender=Identity("webchat", address),
        text="I need help",
    )


async def test_a_message_recorded_before_a_crash_is_dispatched_at_the_next_start(
    store: Repositories, settings: Settings, start_client: Any
) -> None:
    # the process recorded and acknowledged the message, then died before dispatching it
    recorded = await InboundRecorder(store, SHORT).record(inbound("crash-1"))
    assert (await store.messages.get_message(recorded.message.id)).dispatch_state == "pending"

    await start_client(settings)  # the restarted router

    async def dispatched_and_sent() -> bool:
        done = await _dispatched(store, recorded.message.id)
        return done and len(await factories.outbox(store, state=OutboxState.SENT)) == 1

    await wait_for(dispatched_and_sent)
    message = await store.messages.get_message(recorded.message.id)
    assert message.decision["action"] == "queued"
    assert len(await factories.outbox(store)) == 1
    thread = await store.threads.get_thread(recorded.thread.id)
    assert thread.status == "queued" and thread.queued_by == recorded.message.id


async def test_a_crash_between_queueing_and_notice_still_sends_one_notice(
    store: Repositories, settings: Settings, start_client: Any
) -> None:
    recorded = await InboundRecorder(store, SHORT).record(inbound("crash-2"))
    await store.queue.queue_thread(recorded.thread.id, "no_nlu", recorded.message.id, utcnow())  # then died

    await start_client(settings)
    second = (await start_client(settings)).server.app  # a second process sweeping the same store
    await wait_for(lambda: _notice_sent(store))
    # both sweepers ran; the notice exists once and no further dispatch is pending
    await second[DISPATCHER].dispatch(await store.messages.get_message(recorded.message.id))
    assert len(await factories.outbox(store)) == 1
    assert len(await factories.messages(store, direction="out")) == 1


async def _notice_sent(store: Repositories) -> bool:
    return len(await factories.outbox(store, state=OutboxState.SENT)) == 1


async def test_a_waiting_thread_gets_no_second_notice(client: TestClient) -> None:
    app = client.server.app
    decisions = []
    for n in range(3):
        _, task = await app[PIPELINE].receive(inbound(f"w{n}"))
        decisions.append(await task)
    assert [d.action for d in decisions] == [DecisionAction.QUEUED, DecisionAction.WAITING, DecisionAction.WAITING]
    assert len(decisions[0].replies) == 1 and decisions[1].replies == ()
    assert len(await factories.outbox(app[STORE])) == 1


async def test_an_assigned_thread_goes_to_its_agent_without_a_bot_reply(client: TestClient) -> None:
    app = client.server.app
    recorded, task = await app[PIPELINE].receive(inbound("a1"))
    await task
    await app[STORE].threads.set_thread_fields(recorded.thread.id, status=ThreadStatus.ASSIGNED, assignee="agt_1")
    _, task = await app[PIPELINE].receive(inbound("a2"))
    decision = await task
    assert decision.action == DecisionAction.TO_AGENT
    assert len(await factories.outbox(app[STORE])) == 1  # only the first message's notice


async def test_the_notice_reaches_sent_status(client: TestClient) -> None:
    app = client.server.app
    _, task = await app[PIPELINE].receive(inbound("s1"))
    decision = await task
    store = app[STORE]

    async def sent() -> bool:
        message = await store.messages.get_message(decision.replies[0])
        return message.delivery_status == DeliveryStatus.SENT

    await wait_for(sent)


async def test_the_sweeper_outlives_an_unexpected_store_error(
    store: Repositories, settings: Settings, start_client: Any
) -> None:
    """One failed claim (an OperationFailure, not an outage) is logged and the next sweep goes on;
    before, it ended the sweeper and messages of a dead process were never dispatched."""
    app = (await start_client(settings)).server.app
    running = app[STORE]
    claim = running.messages.claim_undispatched
    failed: list[bool] = []

    async def claim_failing_once(now: Any, lease: timedelta) -> Any:
        if not failed:
            failed.append(True)
            raise OperationFailure("an unexpected answer from the store")
        return await claim(now, lease)

    running.messages.claim_undispatched = claim_failing_once  # type: ignore[method-assign]
    await wait_for(lambda: _true(failed))
    recorded = await InboundRecorder(store, SHORT).record(inbound("crash-3"))  # its process died
    await wait_for(lambda: _dispatched(store, recorded.message.id))


async def _true(flags: list[bool]) -> bool:
    return bool(flags)


async def _dispatched(store: Repositories, message_id: str) -> bool:
    return (await store.messages.get_message(message_id)).dispatch_state == "done"
