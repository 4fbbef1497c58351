"""The console's queue offers what each conversation's strategy (its inbox's, or its account's)
allows: a *Take* button on a conversation of a manual or next inbox and none on one of an auto
inbox (for an agent; a supervisor may take any), and *Take next* when the account or one of its
inboxes works by next."""

from __future__ import annotations

import re

from aiohttp.test_utils import TestClient

from bot.keys import QUEUE, STORE
from bot.services.agents import add_agent
from conversations.agent_models import Presence, Role
from conversations.models import utcnow
from conversations.repositories import Repositories
from tests.web.console.test_console import log_in
from tests.web.console.test_inbox_membership import writes


async def inbox(store: Repositories, name: str, strategy: str) -> str:
    made = await store.inboxes.create_inbox("default", "telegram", name, {}, utcnow(), None, {"strategy": strategy})
    assert made is not None
    return made.id


def takeable(page: str) -> dict[str, bool]:
    """Each queued conversation on the page, and whether it has a Take button."""
    rows = re.findall(r'<li class="row[^"]*" data-thread="([^"]+)">(.*?)</li>', page, re.S)
    return {thread_id: "/take" in row for thread_id, row in rows}


async def test_the_queue_offers_what_each_conversations_strategy_allows(client: TestClient) -> None:
    app = client.server.app  # the account's strategy is the settings' default, manual
    store = app[STORE]
    auto = await inbox(store, "Auto desk", "auto")
    first, by_auto = await writes(app, "ann"), await writes(app, "bea", auto)  # nobody on shift: both wait
    ada, password = await add_agent(store, "default", "ada")
    assert ada is not None
    await store.agents.update_agent(ada.id, presence=Presence.ONLINE)  # no event: nothing is assigned
    assert (await log_in(client, "ada", password)).status == 303

    page = await (await client.get("/console")).text()
    assert takeable(page) == {first: True, by_auto: False}
    assert 'id="take-next"' not in page  # nothing here works by next

    nxt = await inbox(store, "Next desk", "next")
    app[QUEUE].inbox_routing_changed("default", nxt)  # as its API and its form say when they save it
    by_next = await writes(app, "cid", nxt)
    page = await (await client.get("/console")).text()
    assert takeable(page) == {first: True, by_auto: False, by_next: True}
    assert 'id="take-next"' in page


async def test_a_supervisor_may_take_a_conversation_of_an_auto_inbox(client: TestClient) -> None:
    app = client.server.app
    store = app[STORE]
    by_auto = await writes(app, "bea", await inbox(store, "Auto desk", "auto"))
    sue, password = await add_agent(store, "default", "sue", role=Role.SUPERVISOR)
    assert sue is not None
    assert (await log_in(client, "sue", password)).status == 303
    assert takeable(await (await client.get("/console")).text()) == {by_auto: True}
