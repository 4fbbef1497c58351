"""Queue semantics against the embedded store: concurrent claims across two router instances,
capacity and team rules, strategies, transfer, resolve and reopen, offline agents."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from bot.business_hours import BusinessHours
from bot.keys import PIPELINE, QUEUE, SHIFTS, STORE
from bot.router.queue import Queue, QueueError
from bot.settings import Settings
from bot.web.keys import SERVICES
from conversations.agent_models import Agent, Presence, Role
from conversations.errors import StoreUnavailable
from conversations.ids import new_id
from conversations.models import utcnow
from conversations.repositories import Repositories
from conversations.thread_models import DecisionAction, Thread, ThreadStatus
from conversations.traffic import Identity, Inbound
from tests import factories
from tests.conftest import make_settings
from tests.router.test_inbound import wait_for


async def make_agent(
    store: Repositories,
    login: str,
    *,
    teams: list[str] | None = None,
    capacity: int = 5,
    online: bool = True,
    role: Role = Role.AGENT,
) -> Agent:
    """An agent straight in the store (no password: these tests never log in)."""
    agent = Agent(
        id=new_id("agt"),
        account_id="default",
        login=login,
        name=login.title(),
        role=role,
        created_at=utcnow(),
        teams=teams or [],
        capacity=capacity,
        free=capacity,
        presence=Presence.ONLINE if online else Presence.OFFLINE,
    )
    assert await store.agents.create_agent(agent)
    return agent


async def customer_writes(app: Any, visitor: str, text: str = "I need a human", n: int = 0) -> str:
    """A customer message through the real pipeline; returns its thread id once dispatched."""
    recorded, task = await app[PIPELINE].receive(
        Inbound(
            account_id="default",
            channel="webchat",
            external_id=f"{visitor}:{n}:{text}",
            sender=Identity("webchat", visitor),
            text=text,
        )
    )
    if task is not None:
        await task
    return str(recorded.thread.id)


async def test_fifty_claimers_on_each_of_two_instances_assign_every_thread_once(
    settings: Settings, start_client: Any
) -> None:
    first = (await start_client(settings)).server.app
    second = (await start_client(settings)).server.app
    store = first[STORE]
    threads = [await customer_writes(first, f"v{n}") for n in range(60)]
    agents = [await make_agent(store, f"agent{n}", capacity=1) for n in range(100)]
    queues = [first[QUEUE], second[QUEUE]]

    claims = await asyncio.gather(*(queues[n % 2].take_next(agent) for n, agent in enumerate(agents)))

    won = [thread.id for thread in claims if thread is not None]
    assert len(won) == 60 and set(won) == set(threads)  # every thread once, none twice
    assigned = await factories.threads(store, status="assigned")
    assignees = [thread.assignee for thread in assigned]
    assert len(assignees) == 60 and max(Counter(assignees).values()) == 1
    everyone = await store.agents.list_agents("default")
    assert [a for a in everyone if a.load > 1] == [] and [a for a in everyone if a.free < 0] == []
    kinds = [entry.kind for thread in assigned for entry in await store.queue.contact_timeline(thread.contact_id)]
    assert kinds.count("assigned") == 60


async def test_a_hundred_agents_racing_for_one_thread_leave_one_owner(settings: Settings, start_client: Any) -> None:
    first = (await start_client(settings)).server.app
    second = (await start_client(settings)).server.app
    thread_id = await customer_writes(first, "solo")
    agents = [await make_agent(first[STORE], f"a{n}") for n in range(100)]

    async def take(n: int, agent: Agent) -> str:
        try:
            await (first, second)[n % 2][QUEUE].take(agent, thread_id)
            return "won"
        except QueueError as exc:
            return exc.code

    results = Counter(await asyncio.gather(*(take(n, a) for n, a in enumerate(agents))))
    assert results["won"] == 1 and results["taken"] == 99
    # the losers' reserved slots were all given back
    everyone = await first[STORE].agents.list_agents("default")
    assert len([a for a in everyone if a.load == 1]) == 1
    assert len([a for a in everyone if (a.role, a.load, a.free) == ("agent", 0, 5)]) == 99


async def test_capacity_holds_when_one_agent_claims_from_two_instances_at_once(
    settings: Settings, start_client: Any
) -> None:
    first = (await start_client(settings)).server.app
    second = (await start_client(settings)).server.app
    for n in range(10):
        await customer_writes(first, f"c{n}")
    agent = await make_agent(first[STORE], "busy", capacity=2)
    claims = await asyncio.gather(
        *((first, second)[n % 2][QUEUE].take_next(agent) for n in range(20)), return_exceptions=True
    )
    assert sum(1 for c in claims if not isinstance(c, BaseException) and c is not None) == 2
    assert {c.code for c in claims if isinstance(c, QueueError)} == {"no_capacity"}
    assert await first[STORE].queue.count_assigned(agent.id) == 2


async def test_teams_decide_who_may_take_a_thread(client: TestClient) -> None:
    app = client.server.app
    store, queue = app[STORE], app[QUEUE]
    thread_id = await customer_writes(app, "billing-customer")
    await store.threads.set_thread_fields(thread_id, team="billing")
    sales = await make_agent(store, "sam", teams=["sales"])
    billing = await make_agent(store, "bea", teams=["billing"])
    assert await queue.take_next(sales) is None
    with pytest.raises(QueueError) as refused:
        await queue.take(sales, thread_id)
    assert refused.value.code == "other_team" and refused.value.status == 403
    taken = await queue.take_next(billing)
    assert taken is not None and taken.id == thread_id and taken.assignee == billing.id


async def test_next_takes_the_most_urgent_then_the_longest_waiting(client: TestClient) -> None:
    app = client.server.app
    store, queue = app[STORE], app[QUEUE]
    oldest = await customer_writes(app, "old")
    newer = await customer_writes(app, "new")
    urgent = await customer_writes(app, "urgent")
    await store.threads.set_thread_fields(urgent, priority=2)
    agent = await make_agent(store, "nina")
    order = [(await queue.take_next(agent)).id for _ in range(3)]  # type: ignore[union-attr]
    assert order == [urgent, oldest, newer]


async def test_auto_assigns_least_loaded_online_agent_round_robin(
    embedded: Any, db_name: str, start_client: Any
) -> None:
    settings = make_settings(
        embedded.uri, db_name, queue={"strategy": "auto", "assign_interval": 3600, "channel_teams": "webchat=support"}
    )
    app = (await start_client(settings)).server.app
    store = app[STORE]
    ann = await make_agent(store, "ann", teams=["support"], capacity=2)
    ben = await make_agent(store, "ben", teams=["support"], capacity=2)
    await make_agent(store, "off", teams=["support"], online=False)
    await make_agent(store, "sales", teams=["sales"])
    assigned = []
    for n in range(5):
        thread_id = await customer_writes(app, f"auto{n}")
        assigned.append((await store.threads.get_thread(thread_id)).assignee)  # type: ignore[union-attr]
    # least loaded first, alternating between equals, never the offline agent, never over capacity
    assert sorted(assigned[:4]) == sorted([ann.id, ben.id, ann.id, ben.id])
    assert assigned[0] != assigned[1] and assigned[2] != assigned[3]
    assert assigned[4] is None  # both are full: the fifth waits in the queue
    assert (await store.threads.get_thread(thread_id)).status == "queued"  # type: ignore[union-attr]
    # a freed slot is used at once
    first = await store.threads.get_thread((await store.queue.assigned_threads(ann.id))[0].id)
    await app[QUEUE].resolve(first.id, ann)  # type: ignore[union-attr]
    assert (await store.threads.get_thread(thread_id)).assignee == ann.id  # type: ignore[union-attr]


async def test_transfer_to_an_agent_a_team_and_an_offline_agent(client: TestClient) -> None:
    app = client.server.app
    store, queue = app[STORE], app[QUEUE]
    ada = await make_agent(store, "ada", teams=["support"])
    bob = await make_agent(store, "bob", teams=["billing"])
    gone = await make_agent(store, "gone", teams=["vip"], online=False)
    thread_id = await customer_writes(app, "t1")
    await queue.take(ada, thread_id)

    moved = await queue.transfer(thread_id, ada, to_agent=bob.id, note="billing question")
    assert moved.assignee == bob.id
    assert (await store.agents.get_agent(ada.id)).load == 0 and (await store.agents.get_agent(bob.id)).load == 1  # type: ignore[union-attr]
    with pytest.raises(QueueError):  # no longer ada's
        await queue.transfer(thread_id, ada, to_team="support")

    requeued = await queue.transfer(thread_id, bob, to_agent=gone.id, note="for the VIP desk")
    assert requeued.status == "queued" and requeued.team == "vip" and requeued.assignee is None
    assert (await store.agents.get_agent(bob.id)).load == 0  # type: ignore[union-attr]

    await queue.take(await make_agent(store, "vic", teams=["vip"]), thread_id)
    vic = await store.agents.agent_by_login("default", "vic")
    to_team = await queue.transfer(thread_id, vic, to_team="billing")  # type: ignore[arg-type]
    assert to_team.status == "queued" and to_team.team == "billing"
    notes = [e.text for e in await store.queue.contact_timeline(to_team.contact_id) if e.kind == "transferred"]
    assert notes[0] == "billing question" and notes[1].startswith("for the VIP desk (Gone cannot take it now)")


async def test_an_offline_agent_takes_nothing_and_a_shift_end_hands_work_back(client: TestClient) -> None:
    app = client.server.app
    store, queue, shifts = app[STORE], app[QUEUE], app[SHIFTS]
    agent = await make_agent(store, "olga", online=False)
    first = await customer_writes(app, "o1")
    with pytest.raises(QueueError) as refused:
        await queue.take(agent, first)
    assert refused.value.code == "not_on_shift"

    await shifts.start(agent)
    await queue.take(agent, first)
    await shifts.set_away(agent, True)
    second = await customer_writes(app, "o2")
    with pytest.raises(QueueError):  # away: keeps what they have, takes nothing new
        await queue.take(agent, second)
    await shifts.set_away(agent, False)

    shift = await shifts.stop(agent)
    assert shift is not None and shift.duration_s is not None and shift.ended_at is not None
    thread = await store.threads.get_thread(first)
    assert thread.status == "queued" and thread.assignee is None and thread.last_assignee == agent.id  # type: ignore[union-attr]
    assert (await store.agents.get_agent(agent.id)).presence == "offline"  # type: ignore[union-attr]


async def test_reopen_goes_to_the_same_agent_when_online_else_to_the_queue(client: TestClient) -> None:
    app = client.server.app
    store, queue, shifts = app[STORE], app[QUEUE], app[SHIFTS]
    agent = await make_agent(store, "rita")
    thread_id = await customer_writes(app, "again")
    await queue.take(agent, thread_id)
    await queue.resolve(thread_id, agent)
    assert (await store.agents.get_agent(agent.id)).load == 0  # type: ignore[union-attr]

    assert await customer_writes(app, "again", "one more thing", 1) == thread_id  # same thread
    reopened = await store.threads.get_thread(thread_id)
    assert reopened.status == "assigned" and reopened.assignee == agent.id  # type: ignore[union-attr]
    assert (await store.agents.get_agent(agent.id)).load == 1  # type: ignore[union-attr]

    await queue.resolve(thread_id, agent)
    await shifts.stop(agent)
    assert await customer_writes(app, "again", "still there?", 2) == thread_id
    reopened = await store.threads.get_thread(thread_id)
    assert reopened.status == "queued" and reopened.assignee is None  # type: ignore[union-attr]
    kinds = [e.kind for e in await store.queue.contact_timeline(reopened.contact_id)]  # type: ignore[union-attr]
    assert kinds.count("reopened") == 2


async def test_outside_the_reopen_window_a_new_thread_opens(embedded: Any, db_name: str, start_client: Any) -> None:
    app = (await start_client(make_settings(embedded.uri, db_name, queue={"reopen_days": 0}))).server.app
    agent = await make_agent(app[STORE], "walt")
    thread_id = await customer_writes(app, "late")
    await app[QUEUE].take(agent, thread_id)
    await app[QUEUE].resolve(thread_id, agent)
    assert await customer_writes(app, "late", "hello again", 1) != thread_id


async def test_out_of_hours_the_customer_is_told_when_we_open(embedded: Any, db_name: str, start_client: Any) -> None:
    now = datetime.now(UTC)
    closed_today = f"{['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'][(now.weekday() + 1) % 7]} 09:00-17:00"
    settings = make_settings(
        embedded.uri, db_name, queue={"business_hours": closed_today, "out_of_hours_reply": "Closed: back at 9."}
    )
    app = (await start_client(settings)).server.app
    await customer_writes(app, "night")
    texts = [message.text for message in await factories.messages(app[STORE], direction="out")]
    assert sorted(texts) == sorted(["Closed: back at 9.", settings.dispatch.queued_notice])


def test_business_hours_are_read_as_people_write_them() -> None:
    hours = BusinessHours.parse("mon-fri 09:00-17:00; sat 10:00-14:00", "Europe/Riga")
    riga = timezone(timedelta(hours=2))  # EET, no daylight saving in late November
    assert hours.is_open(datetime(2026, 11, 25, 9, 0, tzinfo=riga))  # a Wednesday
    assert not hours.is_open(datetime(2026, 11, 25, 17, 0, tzinfo=riga))
    assert hours.is_open(datetime(2026, 11, 28, 13, 59, tzinfo=riga))  # Saturday
    assert not hours.is_open(datetime(2026, 11, 29, 12, 0, tzinfo=riga))  # Sunday
    assert BusinessHours.parse("", "UTC").is_open(datetime(2026, 11, 29, 3, 0, tzinfo=UTC))
    for bad in ("mon-fri", "mon-fri 17:00-09:00", "someday 09:00-10:00", "mon 9-17"):
        with pytest.raises(ValueError):
            BusinessHours.parse(bad, "UTC")


async def test_sla_clocks_run_until_an_agent_answers(client: TestClient) -> None:
    app = client.server.app
    store, queue = app[STORE], app[QUEUE]
    agent = await make_agent(store, "sla")
    thread_id = await customer_writes(app, "sla-customer")
    thread = await store.threads.get_thread(thread_id)
    kind, due = queue.sla.due(thread)  # type: ignore[arg-type,misc]
    assert kind == "first_response" and due == thread.queued_at + timedelta(minutes=15)  # type: ignore[union-attr,operator]
    await queue.take(agent, thread_id)
    await app[SERVICES].replies.answer(thread_id, agent, "Hello, I am here", "nonce-0001")
    answered = await store.threads.get_thread(thread_id)
    assert answered.first_response_at is not None and queue.sla.due(answered) is None  # type: ignore[union-attr,arg-type]
    decision = await _dispatched(app, "sla-customer", "thanks, and another question")
    assert decision == DecisionAction.TO_AGENT
    waiting = await store.threads.get_thread(thread_id)
    assert queue.sla.due(waiting)[0] == "next_response"  # type: ignore[arg-type,index]
    await wait_for(lambda: _agent_reply_sent(store))


async def _dispatched(app: Any, visitor: str, text: str) -> DecisionAction:
    _, task = await app[PIPELINE].receive(
        Inbound("default", "webchat", f"{visitor}:{text}", Identity("webchat", visitor), text)
    )
    return (await task).action  # type: ignore[no-any-return]


async def _agent_reply_sent(store: Repositories) -> bool:
    sent = await factories.messages(store, direction="out", delivery_status="sent")
    return len([message for message in sent if message.sender.get("kind") == "agent"]) == 1


async def test_the_queue_reads_its_team_and_direct_channel_settings() -> None:
    from bot.settings import QueueSettings

    queue = Queue(None, QueueSettings(direct_channels="email, sms", channel_teams="email=billing"))  # type: ignore[arg-type]
    now = utcnow()
    on = {
        c: Thread(c, "default", "con_1", c, ThreadStatus.BOT, opened_at=now, last_message_at=now)
        for c in ("sms", "webchat")
    }
    routing = queue.account_routing
    assert await routing.skips_bot(on["sms"]) and not await routing.skips_bot(on["webchat"])


async def test_auto_assignment_reaches_past_a_page_of_threads_no_agent_can_take(
    embedded: Any, db_name: str, start_client: Any, raw_database: Any
) -> None:
    """More than a page of threads waiting for a team with no free agent at the head of the queue
    must not hide a later thread another team's free agent can take (nor make the loop retry the
    same page for ever)."""
    settings = make_settings(embedded.uri, db_name, queue={"strategy": "manual", "assign_interval": 3600})
    app = (await start_client(settings)).server.app
    store, queue = app[STORE], app[QUEUE]
    for n in range(101):
        await store.threads.set_thread_fields(await customer_writes(app, f"billing{n}"), team="billing")
    late = await customer_writes(app, "sales-customer")
    await store.threads.set_thread_fields(late, team="sales")
    anyone = await customer_writes(app, "no-team-customer")  # stored without a team at all
    assert "team" not in await raw_database.threads.find_one({"_id": anyone})  # as stored
    sam = await make_agent(store, "sam", teams=["sales"])
    await queue.set_routing("default", strategy="auto")

    assert await queue.auto_assign("default") == 2
    for thread_id in (late, anyone):
        thread = await store.threads.get_thread(thread_id)
        assert thread is not None and thread.status == "assigned" and thread.assignee == sam.id
    assert await store.queue.queue_depth("default") == 101  # billing's threads still wait for billing


async def test_a_slot_reserved_for_a_claim_that_fails_goes_back_unless_the_claim_landed(client: TestClient) -> None:
    """Every claim reserves a slot of the agent's first; a claim that fails (a store outage, a
    cancel) gives it back, but one whose answer alone was lost keeps it: the agent neither counts
    a conversation they never got nor goes over capacity."""
    store: Repositories = client.server.app[STORE]
    agent = await make_agent(store, "sal", capacity=2)
    thread_id = await customer_writes(client.server.app, "c1")

    async def load() -> tuple[int, int]:
        fresh = await store.agents.get_agent(agent.id)
        assert fresh is not None
        return fresh.load, fresh.free

    async def outage() -> None:
        raise StoreUnavailable("store unreachable: AutoReconnect")

    assert await store.queue.reserve_agent("default", 0, _id=agent.id) is not None
    with pytest.raises(StoreUnavailable):
        await store.queue.or_release(agent.id, outage(), thread_id)
    assert await load() == (0, 2)

    async def applied_then_lost() -> None:
        assert await store.queue.claim_next_queued("default", agent.id, utcnow(), _id=thread_id) is not None
        raise StoreUnavailable("store unreachable: AutoReconnect")  # the answer never came back

    assert await store.queue.reserve_agent("default", 0, _id=agent.id) is not None
    with pytest.raises(StoreUnavailable):
        await store.queue.or_release(agent.id, applied_then_lost(), thread_id)
    assert await load() == (1, 1)  # the conversation is the agent's: the slot stays taken
    assert (await store.threads.get_thread(thread_id)).assignee == agent.id  # type: ignore[union-attr]
