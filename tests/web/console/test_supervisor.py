"""The supervisor: between an agent and an admin. They work every conversation of the account —
take one queued for a team they are not in, reassign one an agent holds — and read its reports,
but change no setting; an agent can do none of the first two, and neither of them the last."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient

from bot.keys import QUEUE, STORE
from bot.router.queue import QueueError
from bot.services.agents import add_agent
from conversations.agent_models import Role
from tests.router.test_queue import customer_writes, make_agent
from tests.web.console.test_console import console_csrf, log_in


async def test_a_supervisor_reassigns_any_conversation_where_an_agent_cannot(client: TestClient) -> None:
    app = client.server.app
    store, queue = app[STORE], app[QUEUE]
    ada = await make_agent(store, "ada", teams=["support"])
    bob = await make_agent(store, "bob", teams=["support"])
    sue = await make_agent(store, "sue", role=Role.SUPERVISOR)
    held = await customer_writes(app, "held")
    await queue.take(ada, held)
    with pytest.raises(QueueError) as refused:  # an agent: only their own
        await queue.transfer(held, bob, to_agent=bob.id)
    assert refused.value.code == "not_yours"
    moved = await queue.transfer(held, sue, to_agent=bob.id, note="bob knows this customer")
    assert moved.assignee == bob.id

    billing = await customer_writes(app, "billing")
    await queue.take(ada, billing)
    await queue.transfer(billing, ada, to_team="billing")  # queued for a team neither bob nor sue is in
    with pytest.raises(QueueError) as refused:
        await queue.take(bob, billing)
    assert refused.value.code == "other_team"
    taken = await queue.take(sue, billing)
    assert taken.assignee == sue.id


async def test_a_supervisor_reads_reports_but_changes_no_setting(client: TestClient) -> None:
    store = client.server.app[STORE]
    _, password = await add_agent(store, "default", "sue", role=Role.SUPERVISOR)
    assert (await log_in(client, "sue", password)).status == 303
    console = await (await client.get("/console")).text()
    assert 'id="nav-reports"' in console and 'href="/admin"' not in console
    assert (await client.get("/admin/reports")).status == 200
    assert (await client.get("/admin/reports.csv")).status == 200
    for page in ("/admin", "/admin/account", "/admin/intents", "/admin/campaigns", "/admin/audit"):
        assert (await client.get(page)).status == 403, page
    token = await console_csrf(client)
    refused = await client.post("/admin/agents", data={"login": "sneaky", "role": "agent", "csrf_token": token})
    assert refused.status == 403 and await store.agents.agent_by_login("default", "sneaky") is None

    _, plain = await add_agent(store, "default", "plain", role=Role.AGENT)  # an agent: no reports
    await client.post("/logout", data={"csrf_token": token})
    assert (await log_in(client, "plain", plain)).status == 303
    assert (await client.get("/admin/reports")).status == 403
    assert 'id="nav-reports"' not in await (await client.get("/console")).text()
