"""An agent's inboxes through the REST API: set on creation and by PATCH (a list of inbox keys, or
null for every inbox), checked against the account: another account's inbox, or one that does
not exist, is a clear 422 and changes nothing."""

from __future__ import annotations

from typing import Any

from bot.keys import STORE
from bot.web.api.kit import issue_token
from conversations.models import utcnow
from tests.web.api.test_api import api_client, bearer


async def test_an_agents_inboxes_are_set_and_checked_through_the_api(
    embedded: Any, db_name: str, start_client: Any
) -> None:
    client = await api_client(embedded, db_name, start_client)
    store = client.server.app[STORE]
    token = bearer(await issue_token(store, "default", "crm", ["read", "write"], "test"))
    ours = await store.inboxes.create_inbox("default", "telegram", "Sales bot", {}, utcnow(), None)
    theirs = await store.inboxes.create_inbox("shop2", "telegram", "Rival bot", {}, utcnow(), None)
    assert ours is not None and theirs is not None

    made = await client.post(
        "/api/agents", json={"login": "fred", "inboxes": ["first:webchat", ours.id]}, headers=token
    )
    assert made.status == 201, await made.text()
    fred = (await made.json())["agent"]
    assert sorted(fred["inboxes"]) == sorted(["first:webchat", ours.id])
    stored = await store.agents.get_agent(fred["id"])
    assert stored is not None and stored.inboxes == sorted(["first:webchat", ours.id])

    for keys in ([theirs.id], ["first:fax"]):  # another account's inbox; no such channel
        refused = await client.post("/api/agents", json={"login": "gina", "inboxes": keys}, headers=token)
        assert refused.status == 422 and keys[0] in (await refused.json())["detail"]
        assert await store.agents.agent_by_login("default", "gina") is None
        patched = await client.patch(f"/api/agents/{fred['id']}", json={"inboxes": keys}, headers=token)
        assert patched.status == 422
    stored = await store.agents.get_agent(fred["id"])
    assert stored is not None and stored.inboxes == sorted(["first:webchat", ours.id])  # unchanged

    every = await client.patch(f"/api/agents/{fred['id']}", json={"inboxes": None}, headers=token)
    assert every.status == 200 and (await every.json())["inboxes"] is None
    plain = await client.post("/api/agents", json={"login": "hal"}, headers=token)  # the default: every inbox
    assert (await plain.json())["agent"].get("inboxes") is None
    malformed = await client.post("/api/agents", json={"login": "ivy", "inboxes": "all"}, headers=token)
    assert malformed.status == 400
