"""Who sees what: an agent who is a member of inbox A and not of inbox B sees, counts, opens, takes
and is assigned A's conversations and never B's; a supervisor sees both, and so does an agent
stored before memberships existed (no ``inboxes`` field: every inbox)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from bot.keys import PIPELINE, QUEUE, STORE
from bot.router.queue import QueueError
from bot.services.agents import add_agent
from conversations.agent_models import Agent, Role
from conversations.membership import FIRST, thread_match
from conversations.models import utcnow
from conversations.repositories import Repositories
from conversations.traffic import Identity, Inbound
from tests.router.test_queue import make_agent
from tests.web.console.test_console import console_csrf, log_in

A = f"{FIRST}webchat"  # the account's first web chat: its threads carry no inbox_id


async def second_inbox(store: Repositories, account_id: str = "default") -> str:
    """The key of an extra (Telegram) inbox of the account."""
    inbox = await store.inboxes.create_inbox(account_id, "telegram", "Sales bot", {}, utcnow(), None)
    assert inbox is not None
    return inbox.id


async def writes(
    app: Any, who: str, inbox_id: str | None = None, text: str = "I need a human", channel: str = ""
) -> str:
    """A customer asks for a human in inbox A (the first web chat), in the extra (Telegram) inbox
    ``inbox_id``, or in the first inbox of ``channel``."""
    channel = channel or ("telegram" if inbox_id else "webchat")
    recorded, task = await app[PIPELINE].receive(
        Inbound(
            account_id="default",
            channel=channel,
            external_id=f"{who}:{inbox_id}:{text}",
            sender=Identity(channel, who),
            text=text,
            inbox_id=inbox_id,
        )
    )
    if task is not None:
        await task
    return str(recorded.thread.id)


async def member_of(store: Repositories, agent: Agent, *keys: str) -> Agent:
    await store.agents.update_agent(agent.id, inboxes=list(keys))
    fresh = await store.agents.get_agent(agent.id)
    assert fresh is not None
    return fresh


async def test_the_match_of_an_agent_keeps_the_threads_of_their_inboxes_only(client: TestClient) -> None:
    app = client.server.app
    store = app[STORE]
    b = await second_inbox(store)
    in_a, in_b = await writes(app, "ann"), await writes(app, "bea", b)
    in_t = await writes(app, "tom", channel="telegram")  # the first Telegram inbox: same channel as B
    ada = await member_of(store, await make_agent(store, "ada"), A)
    bob = await member_of(store, await make_agent(store, "bob"), b)
    both = await member_of(store, await make_agent(store, "cid"), A, b)
    tia = await member_of(store, await make_agent(store, "tia"), f"{FIRST}telegram")
    ted = await member_of(store, await make_agent(store, "ted"), f"{FIRST}telegram", b)
    nobody = await member_of(store, await make_agent(store, "dan"))
    sue = await member_of(store, await make_agent(store, "sue", role=Role.SUPERVISOR), b)  # oversees anyway
    old = await make_agent(store, "old")
    await client.server.app[STORE].agents._db.agents.update_one({"_id": old.id}, {"$unset": {"inboxes": ""}})
    old = await store.agents.get_agent(old.id)
    assert old is not None and old.inboxes is None
    seen = {
        agent.login: {t.id for t in await store.queue.queued_threads("default", within=thread_match(agent))}
        for agent in (ada, bob, both, tia, ted, nobody, sue, old)
    }
    assert seen == {
        "ada": {in_a},
        "bob": {in_b},
        "cid": {in_a, in_b},
        "tia": {in_t},
        "ted": {in_t, in_b},
        "dan": set(),
        "sue": {in_a, in_b, in_t},
        "old": {in_a, in_b, in_t},
    }
    assert thread_match(sue) == {} and thread_match(old) == {}


async def test_the_console_lists_counts_and_opens_only_the_agents_inboxes(client: TestClient) -> None:
    app = client.server.app
    store = app[STORE]
    b = await second_inbox(store)
    in_a, in_b = await writes(app, "ann", text="Anna needs a human"), await writes(app, "bea", b)
    agent, password = await add_agent(store, "default", "ada")
    assert agent is not None
    await member_of(store, agent, A)
    assert (await log_in(client, "ada", password)).status == 303

    listed = await (await client.get("/console/conversations?view=unassigned")).text()
    assert in_a in listed and in_b not in listed
    everything = await (await client.get("/console/conversations?view=all")).text()
    assert in_a in everything and in_b not in everything
    assert '<a href="/console/conversations?view=unassigned" id="view-unassigned"' in everything
    assert re.search(r'id="view-unassigned"[^>]*>[^<]*<span class="count">1</span>', everything)
    console = await (await client.get("/console")).text()
    assert in_a in console and in_b not in console
    opened = await (await client.get(f"/console?thread={in_a}")).text()
    assert "Anna needs a human" in opened
    refused = await (await client.get(f"/console?thread={in_b}")).text()
    assert "I need a human" not in refused  # as another account's: nothing of it is shown

    token = await console_csrf(client)
    taken = await client.post(f"/console/threads/{in_b}/take", data={"csrf_token": token}, allow_redirects=False)
    assert taken.status == 404 or "no+such+conversation" in taken.headers.get("Location", "")
    thread = await store.threads.get_thread(in_b)
    assert thread is not None and thread.assignee is None


async def test_counts_follow_the_inboxes(client: TestClient) -> None:
    from bot.web.console.conversations import view_filter

    app = client.server.app
    store = app[STORE]
    b = await second_inbox(store)
    await writes(app, "ann")
    await writes(app, "bea", b)
    await writes(app, "cat", b)
    ada = await member_of(store, await make_agent(store, "ada"), A)
    bob = await member_of(store, await make_agent(store, "bob"), b)
    sue = await make_agent(store, "sue", role=Role.SUPERVISOR)
    counts = {
        agent.login: await store.threads.count_threads("default", view_filter("unassigned", agent))
        for agent in (ada, bob, sue)
    }
    assert counts == {"ada": 1, "bob": 2, "sue": 3}


async def test_an_agent_takes_and_asks_for_the_next_of_their_inboxes_only(client: TestClient) -> None:
    app = client.server.app
    store, queue = app[STORE], app[QUEUE]
    b = await second_inbox(store)
    in_b = await writes(app, "bea", b)  # the oldest: "next" would give it first to anyone who sees B
    in_a = await writes(app, "ann")
    ada = await member_of(store, await make_agent(store, "ada"), A)
    with pytest.raises(QueueError) as refused:
        await queue.take(ada, in_b)
    assert refused.value.status == 404
    taken = await queue.take_next(ada)
    assert taken is not None and taken.id == in_a
    assert await queue.take_next(ada) is None  # B's thread waits, for someone who sees B
    bob = await member_of(store, await make_agent(store, "bob"), b)
    again = await queue.take_next(bob)
    assert again is not None and again.id == in_b


async def test_a_supervisor_and_an_agent_of_before_take_from_every_inbox(client: TestClient) -> None:
    app = client.server.app
    store, queue = app[STORE], app[QUEUE]
    b = await second_inbox(store)
    in_b = await writes(app, "bea", b)
    in_a = await writes(app, "ann")
    sue = await member_of(store, await make_agent(store, "sue", role=Role.SUPERVISOR), A)
    assert (await queue.take(sue, in_b)).assignee == sue.id
    old = await make_agent(store, "old")  # stored with no inboxes field
    raw = await store.agents._db.agents.find_one({"_id": old.id})
    assert raw is not None and "inboxes" not in raw
    assert (await queue.take(old, in_a)).assignee == old.id


async def test_automatic_assignment_gives_a_thread_only_to_a_member_of_its_inbox(client: TestClient) -> None:
    app = client.server.app
    store, queue = app[STORE], app[QUEUE]
    b = await second_inbox(store)
    ada = await member_of(store, await make_agent(store, "ada"), A)
    await queue.set_routing("default", strategy="auto")
    in_b = await writes(app, "bea", b)  # only ada is online, and she is not a member of B
    thread = await store.threads.get_thread(in_b)
    assert thread is not None and thread.status == "queued" and thread.assignee is None
    in_a = await writes(app, "ann")
    thread = await store.threads.get_thread(in_a)
    assert thread is not None and thread.assignee == ada.id  # past B's, which nobody here may take
    bob = await member_of(store, await make_agent(store, "bob"), b)
    assert await queue.auto_assign("default") == 1
    thread = await store.threads.get_thread(in_b)
    assert thread is not None and thread.assignee == bob.id


async def test_a_thread_is_transferred_only_to_a_member_of_its_inbox(client: TestClient) -> None:
    app = client.server.app
    store, queue = app[STORE], app[QUEUE]
    b = await second_inbox(store)
    in_b = await writes(app, "bea", b)
    sue = await make_agent(store, "sue", role=Role.SUPERVISOR)
    ada = await member_of(store, await make_agent(store, "ada"), A)
    bob = await member_of(store, await make_agent(store, "bob"), b)
    with pytest.raises(QueueError) as refused:
        await queue.transfer(in_b, sue, to_agent=ada.id)
    assert refused.value.code == "not_member" and refused.value.status == 400
    assert (await queue.transfer(in_b, sue, to_agent=bob.id)).assignee == bob.id


async def test_a_conversation_is_offered_for_transfer_only_to_those_who_see_its_inbox(client: TestClient) -> None:
    app = client.server.app
    store = app[STORE]
    b = await second_inbox(store)
    in_b = await writes(app, "bea", b)
    ada = await member_of(store, await make_agent(store, "ada"), A)
    bob = await member_of(store, await make_agent(store, "bob"), b)
    old = await make_agent(store, "old")  # every inbox
    sue, password = await add_agent(store, "default", "sue", role=Role.SUPERVISOR)
    assert sue is not None
    assert (await log_in(client, "sue", password)).status == 303
    page = await (await client.get(f"/console?thread={in_b}")).text()
    assert f'<option value="{bob.id}"' in page and f'<option value="{old.id}"' in page
    assert f'<option value="{ada.id}"' not in page


async def test_the_contacts_history_beside_a_conversation_keeps_to_the_agents_inboxes(client: TestClient) -> None:
    app = client.server.app
    store = app[STORE]
    b = await second_inbox(store)
    first = await writes(app, "tom", text="hello in the first bot", channel="telegram")
    other = await writes(app, "tom", b, text="my secret order in the sales bot")  # the same person, in B
    one, two = await store.threads.get_thread(first), await store.threads.get_thread(other)
    assert one is not None and two is not None and one.contact_id == two.contact_id
    tia, password = await add_agent(store, "default", "tia")
    assert tia is not None
    await member_of(store, tia, f"{FIRST}telegram")
    _, sue_password = await add_agent(store, "default", "sue", role=Role.SUPERVISOR)
    assert (await log_in(client, "tia", password)).status == 303
    page = await (await client.get(f"/console?thread={first}")).text()
    assert "hello in the first bot" in page
    assert "my secret order" not in page and other not in page  # neither its messages nor its link
    await client.post("/logout", data={"csrf_token": await console_csrf(client)})
    assert (await log_in(client, "sue", sue_password)).status == 303
    page = await (await client.get(f"/console?thread={first}")).text()
    assert "hello in the first bot" in page and "my secret order" in page
