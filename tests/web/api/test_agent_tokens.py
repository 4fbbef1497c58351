"""A token that acts for an agent: it sees what the agent sees (the conversations of their inboxes)
on the conversation routes, and no other route; a token of a supervisor, or the account's own,
sees every inbox. Made by an admin on the Account page."""

from __future__ import annotations

from typing import Any

from bot.keys import STORE
from bot.services.agents import add_agent
from bot.web.api.kit import issue_token
from conversations.agent_models import Agent, Role
from tests.web.api.test_api import api_client, bearer
from tests.web.console.test_console import console_csrf, log_in
from tests.web.console.test_inbox_membership import A, second_inbox, writes


async def agent_of(store: Any, login: str, keys: list[str] | None, role: Role = Role.AGENT) -> Agent:
    agent, _ = await add_agent(store, "default", login, role=role, inboxes=keys)
    assert agent is not None
    return agent


async def test_an_agents_token_sees_the_conversations_of_their_inboxes_only(
    embedded: Any, db_name: str, start_client: Any
) -> None:
    client = await api_client(embedded, db_name, start_client)
    app = client.server.app
    store = app[STORE]
    b = await second_inbox(store)
    in_a = await writes(app, "ann", text="parcel walrus9 in A")
    in_b = await writes(app, "bea", b, text="parcel walrus9 in B")
    message_b = (await store.messages.thread_messages(in_b))[0]
    ada = await agent_of(store, "ada", [A])
    sue = await agent_of(store, "sue", [], Role.SUPERVISOR)
    tokens = {
        "ada": bearer(await issue_token(store, "default", "ada's", ["read", "write"], "test", ada)),
        "sue": bearer(await issue_token(store, "default", "sue's", ["read", "write"], "test", sue)),
        "account": bearer(await issue_token(store, "default", "crm", ["read", "write"], "test")),
    }
    listed, searched = {}, {}
    for who, token in tokens.items():
        items = (await (await client.get("/api/threads", headers=token)).json())["items"]
        listed[who] = {t["id"] for t in items} & {in_a, in_b}
        found = await (await client.get("/api/search", params={"q": "walrus9"}, headers=token)).json()
        searched[who] = {m["thread_id"] for m in found["messages"]}
    assert listed == {"ada": {in_a}, "sue": {in_a, in_b}, "account": {in_a, in_b}}
    assert searched == listed

    ada_token = tokens["ada"]
    assert (await client.get(f"/api/threads/{in_a}", headers=ada_token)).status == 200
    for path in (f"/api/threads/{in_b}", f"/api/threads/{in_b}/timeline", f"/api/messages/{message_b.id}"):
        assert (await client.get(path, headers=ada_token)).status == 404, path
        assert (await client.get(path, headers=tokens["sue"])).status == 200, path
    before = len(await store.messages.thread_messages(in_b))
    note = await client.post(f"/api/threads/{in_b}/notes", json={"text": "peek"}, headers=ada_token)
    assert note.status == 404
    reply = await client.post(f"/api/threads/{in_b}/replies", json={"id": "r1", "text": "hi"}, headers=ada_token)
    assert reply.status == 404
    assert len(await store.messages.thread_messages(in_b)) == before  # nothing was sent

    refused = await client.get("/api/agents", headers=ada_token)  # not a conversation route
    assert refused.status == 403 and "conversation routes" in (await refused.json())["detail"]
    assert (await client.get("/api/agents", headers=tokens["account"])).status == 200

    await store.agents.update_agent(ada.id, active=False)
    assert (await client.get("/api/threads", headers=ada_token)).status == 401


async def test_an_admin_makes_a_token_that_acts_for_an_agent_of_the_account(
    embedded: Any, db_name: str, start_client: Any
) -> None:
    client = await api_client(embedded, db_name, start_client)
    store = client.server.app[STORE]
    ada = await agent_of(store, "ada", [A])
    rival, _ = await add_agent(store, "shop2", "rival")
    assert rival is not None
    await add_agent(store, "default", "boss", role=Role.ADMIN, password="correct horse battery")
    assert (await log_in(client, "boss", "correct horse battery")).status == 303
    page = await (await client.get("/admin/account")).text()
    assert f'<option value="{ada.id}">' in page and rival.id not in page
    token = await console_csrf(client, "/admin/account")
    form = {"csrf_token": token, "name": "ada script", "scope_read": "on"}
    refused = await client.post("/admin/account/tokens", data={**form, "agent": rival.id})
    assert refused.status == 400
    made = await client.post("/admin/account/tokens", data={**form, "agent": ada.id})
    assert made.status == 200
    stored = [t for t in await store.accounts.list_api_tokens("default") if t.name == "ada script"]
    assert len(stored) == 1 and stored[0].agent_id == ada.id
