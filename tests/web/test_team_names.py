"""A team is named by one rule wherever it is named (bot/services/teams.py): an agent's teams, an
inbox's routing team (tests/router/test_inbox_routing.py, tests/web/admin/test_inbox_routing_form.py)
and a transfer to a team's queue, in the console and the API. A name the rule refuses is a 400 and
changes nothing; a name it takes works."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from bot.keys import STORE
from bot.services.agents import add_agent
from bot.services.teams import is_team, teams_of
from bot.web.api.kit import issue_token
from bot.web.keys import FIRST_ADMIN
from tests.router.test_queue import customer_writes
from tests.web.api.test_api import api_client, bearer
from tests.web.console.test_console import console_csrf, log_in

REFUSED = ("night desk", "sales\n", "s" * 33, "", "sales!", "a,b")


def test_the_rule() -> None:
    assert all(is_team(name) for name in ("sales", "night-desk", "tier_2", "pārdošana", "s" * 32))
    assert not any(is_team(name) for name in REFUSED)
    assert teams_of(" sales, vip ,") == ["sales", "vip"] and teams_of("sales, night desk") is None


async def test_the_api_refuses_a_team_that_is_not_one_name(embedded: Any, db_name: str, start_client: Any) -> None:
    client = await api_client(embedded, db_name, start_client)
    store = client.server.app[STORE]
    token = bearer(await issue_token(store, "default", "crm", ["read", "write"], "test"))
    for bad in REFUSED:
        made = await client.post("/api/agents", json={"login": "fred", "teams": [bad]}, headers=token)
        assert made.status == 400 and (await made.json())["detail"].startswith("teams.0:"), repr(bad)
    assert await store.agents.agent_by_login("default", "fred") is None
    made = await client.post("/api/agents", json={"login": "fred", "teams": ["tier_2"]}, headers=token)
    assert made.status == 201
    agent_id = (await made.json())["agent"]["id"]
    changed = await client.patch(f"/api/agents/{agent_id}", json={"teams": ["sales\n"]}, headers=token)
    assert changed.status == 400
    assert (await store.agents.get_agent(agent_id)).teams == ["tier_2"]  # type: ignore[union-attr]

    thread_id = await customer_writes(client.server.app, "carol")
    for bad in REFUSED:
        moved = await client.post(f"/api/threads/{thread_id}/assign", json={"team": bad}, headers=token)
        assert moved.status == 400 and (await moved.json())["detail"].startswith("team:"), repr(bad)
    assert (await store.threads.get_thread(thread_id)).team is None  # type: ignore[union-attr]
    moved = await client.post(f"/api/threads/{thread_id}/assign", json={"team": "tier_2"}, headers=token)
    assert moved.status == 200 and (await moved.json())["team"] == "tier_2"


async def test_the_console_refuses_a_transfer_to_a_team_that_is_not_one_name(client: TestClient) -> None:
    app = client.server.app
    login, password = app[FIRST_ADMIN]  # type: ignore[misc]
    await log_in(client, login, password)
    token = await console_csrf(client)
    thread_id = await customer_writes(app, "visitor")
    url = f"/console/threads/{thread_id}/transfer"
    for bad in ("night desk", "s" * 33, "sales!"):
        refused = await client.post(url, data={"csrf_token": token, "team": bad}, allow_redirects=False)
        assert refused.status == 400 and "A team is one name of 1 to 32" in await refused.text(), bad
    assert (await app[STORE].threads.get_thread(thread_id)).team is None  # type: ignore[union-attr]
    # to an agent who cannot take it (not on shift): said at once, their team's queue offered
    vera, _ = await add_agent(app[STORE], "default", "vera", name="Vera", teams=["billing"])
    assert vera is not None
    offered = await client.post(url, data={"csrf_token": token, "agent": vera.id, "note": "vip"}, allow_redirects=False)
    assert offered.status == 409 and 'name="team" value="billing"' in await offered.text()
    moved = await client.post(url, data={"csrf_token": token, "team": "billing"}, allow_redirects=False)
    assert moved.status == 303
    assert (await app[STORE].threads.get_thread(thread_id)).team == "billing"  # type: ignore[union-attr]
