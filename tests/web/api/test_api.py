"""The REST API with per-account tokens: tokens stored hashed, scopes, account scoping, the
install-wide token, the loopback rule, the console's actions through the API, and the OpenAPI
document matching the routes the application serves."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient
from openapi_spec_validator import validate

from bot.keys import STORE
from bot.web.api.kit import issue_token
from conversations.agent_models import Role
from conversations.models import utcnow
from conversations.thread_models import Contact, Thread, ThreadStatus
from tests.conftest import anonymous, make_settings, raw_database_of
from tests.router.test_queue import customer_writes, make_agent

INSTALL_TOKEN = "install-wide-token"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def api_client(embedded: Any, db_name: str, start_client: Any) -> TestClient:
    client: TestClient = await start_client(make_settings(embedded.uri, db_name, api={"token": INSTALL_TOKEN}))
    made = await client.post("/api/accounts", headers=bearer(INSTALL_TOKEN), json={"id": "shop2", "name": "Second"})
    assert made.status == 201
    return client


async def test_the_openapi_document_is_valid_and_describes_exactly_the_api_routes(client: TestClient) -> None:
    response = await client.get("/api/openapi.json")
    assert response.status == 200
    document = await response.json()
    validate(document)  # a valid OpenAPI 3.1 document
    assert document["openapi"] == "3.1.0"
    served = {
        (route.method, route.resource.canonical)
        for route in client.server.app.router.routes()
        if route.resource is not None and route.resource.canonical.startswith("/api") and route.method != "HEAD"
    }
    described = {(method.upper(), path) for path, item in document["paths"].items() for method in item}
    assert served == described
    assert {t["name"] for t in document["tags"]} >= {"threads", "contacts", "agents", "intents", "webhooks"}


async def test_account_tokens_are_stored_hashed_and_see_only_their_account(
    embedded: Any, db_name: str, start_client: Any
) -> None:
    client = await api_client(embedded, db_name, start_client)
    app, store = client.server.app, client.server.app[STORE]
    token = await issue_token(store, "default", "crm", ["read", "write"], "test")
    other = await issue_token(store, "shop2", "rival", ["read", "write"], "test")
    [stored] = await store.accounts.list_api_tokens("default")
    assert stored.token_hash == hashlib.sha256(token.encode()).hexdigest() and token not in str(stored.to_doc())

    thread_id = await customer_writes(app, "alice", "where is my order?")
    mine = await client.get(f"/api/threads/{thread_id}", headers=bearer(token))
    assert mine.status == 200 and (await mine.json())["thread"]["id"] == thread_id
    theirs = await client.get(f"/api/threads/{thread_id}", headers=bearer(other))
    assert theirs.status == 404 and thread_id in (await theirs.json())["detail"]
    listed = await (await client.get("/api/threads", headers=bearer(other))).json()
    assert listed == {"items": []}
    assert [t["id"] for t in (await (await client.get("/api/threads", headers=bearer(token))).json())["items"]] == [
        thread_id
    ]
    assert (await client.get("/api/threads", params={"account": "default"}, headers=bearer(other))).status == 403
    assert (await client.get("/api/threads", headers=bearer("omr_made-up"))).status == 401
    assert (await client.get("/api/threads", headers={"Authorization": f"Basic {token}"})).status == 401
    async with anonymous(client) as nobody:
        assert (await nobody.get("/api/threads")).status == 401  # no token, no pass

    await store.accounts.revoke_api_token("default", stored.id)
    assert (await client.get("/api/threads", headers=bearer(token))).status == 401


async def test_a_read_only_token_reads_but_does_not_write(embedded: Any, db_name: str, start_client: Any) -> None:
    client = await api_client(embedded, db_name, start_client)
    token = await issue_token(client.server.app[STORE], "default", "reports", ["read"], "test")
    thread_id = await customer_writes(client.server.app, "bob")
    assert (await client.get(f"/api/threads/{thread_id}", headers=bearer(token))).status == 200
    refused = await client.post(f"/api/threads/{thread_id}/notes", json={"text": "hi"}, headers=bearer(token))
    assert refused.status == 403 and "write scope" in (await refused.json())["detail"]


async def test_the_install_wide_token_manages_accounts_and_account_tokens_cannot(
    embedded: Any, db_name: str, start_client: Any
) -> None:
    client = await api_client(embedded, db_name, start_client)
    store = client.server.app[STORE]
    made = await client.post(
        "/api/accounts",
        headers=bearer(INSTALL_TOKEN),
        json={"id": "shop3", "name": "Third", "admin": {"login": "boss"}},
    )
    body = await made.json()
    assert made.status == 201 and body["admin"]["role"] == "admin" and len(body["password"]) >= 12
    assert "password_hash" not in body["admin"]
    assert (
        await client.post("/api/accounts", headers=bearer(INSTALL_TOKEN), json={"id": "shop3", "name": "x"})
    ).status == 409
    listed = await (await client.get("/api/accounts", headers=bearer(INSTALL_TOKEN))).json()
    assert [a["id"] for a in listed["items"]] == ["default", "shop2", "shop3"]

    token = await issue_token(store, "shop3", "own", ["read", "write"], "test")
    assert [a["id"] for a in (await (await client.get("/api/accounts", headers=bearer(token))).json())["items"]] == [
        "shop3"
    ]
    assert (await client.post("/api/accounts", headers=bearer(token), json={"id": "shop4", "name": "x"})).status == 403
    assert (await client.get("/api/accounts/shop2", headers=bearer(token))).status == 404
    refused = await client.patch("/api/accounts/shop3", headers=bearer(token), json={"disabled": True})
    assert refused.status == 403
    changed = await client.patch(
        "/api/accounts/shop3",
        headers=bearer(token),
        json={"retention_days": 30, "reopen_days": 2, "strategy": "auto", "name": "Shop 3"},
    )
    account = await changed.json()
    assert changed.status == 200 and account["retention_days"] == 30 and account["name"] == "Shop 3"
    assert account["routing"]["strategy"] == "auto" and account["routing"]["reopen_days"] == 2
    bad = await client.patch("/api/accounts/shop3", headers=bearer(token), json={"business_hours": "someday"})
    assert bad.status == 400

    off = await client.patch("/api/accounts/shop3", headers=bearer(INSTALL_TOKEN), json={"disabled": True})
    assert off.status == 200 and (await off.json())["disabled"] is True
    assert (await client.get("/api/threads", headers=bearer(token))).status == 403  # its tokens stop working
    own = await client.patch("/api/accounts/default", headers=bearer(INSTALL_TOKEN), json={"disabled": True})
    assert own.status == 409


async def test_loopback_clients_without_a_token_are_refused_like_anyone(
    embedded: Any, db_name: str, start_client: Any, tmp_path: Path
) -> None:
    client = await start_client(
        make_settings(embedded.uri, db_name, api={"token": "", "token_file": str(tmp_path / "t")})
    )
    async with anonymous(client) as nobody:  # an install without api.token, a client on 127.0.0.1
        for headers in ({}, {"X-Forwarded-For": "203.0.113.7"}, {"Forwarded": "for=127.0.0.1"}):
            refused = await nobody.get("/api/outbox", headers=headers)
            assert refused.status == 401 and (await refused.json())["error"] == "unauthorized"


async def test_the_console_s_thread_actions_through_the_api(embedded: Any, db_name: str, start_client: Any) -> None:
    client = await api_client(embedded, db_name, start_client)
    app, store = client.server.app, client.server.app[STORE]
    token = bearer(await issue_token(store, "default", "crm", ["read", "write"], "test"))
    thread_id = await customer_writes(app, "carol", "refund please")
    agent = await make_agent(store, "dana", teams=["billing"])

    noted = await client.post(f"/api/threads/{thread_id}/notes", json={"text": "VIP customer"}, headers=token)
    assert noted.status == 200
    labelled = await client.put(f"/api/threads/{thread_id}/labels", json={"labels": ["refund", "vip"]}, headers=token)
    assert (await labelled.json())["labels"] == ["refund", "vip"]
    assert (await client.put(f"/api/threads/{thread_id}/labels", json={"labels": ["<b>"]}, headers=token)).status == 400
    assigned = await client.post(
        f"/api/threads/{thread_id}/assign", json={"agent": agent.id, "note": "yours"}, headers=token
    )
    body = await assigned.json()
    assert assigned.status == 200 and body["status"] == "assigned" and body["assignee"] == agent.id
    assert (await client.post(f"/api/threads/{thread_id}/assign", json={}, headers=token)).status == 400
    resolved = await client.post(f"/api/threads/{thread_id}/resolve", headers=token)
    assert resolved.status == 200 and (await resolved.json())["status"] == "resolved"
    assert (await client.post(f"/api/threads/{thread_id}/resolve", headers=token)).status == 409

    timeline = (await (await client.get(f"/api/threads/{thread_id}/timeline", headers=token)).json())["items"]
    note = next(e for e in timeline if e["kind"] == "note")
    assert note["text"] == "VIP customer" and note["actor_name"] == "API: crm"
    assert [e["kind"] for e in timeline][-1] == "resolved"
    queued = await (await client.get("/api/threads", params={"status": "resolved"}, headers=token)).json()
    assert [t["id"] for t in queued["items"]] == [thread_id]


async def test_contacts_and_agents_through_the_api(embedded: Any, db_name: str, start_client: Any) -> None:
    client = await api_client(embedded, db_name, start_client)
    store = client.server.app[STORE]
    token = bearer(await issue_token(store, "default", "crm", ["read", "write"], "test"))
    other = bearer(await issue_token(store, "shop2", "rival", ["read", "write"], "test"))
    thread_id = await customer_writes(client.server.app, "erik")
    contacts = (await (await client.get("/api/contacts", headers=token)).json())["items"]
    assert len(contacts) == 1 and contacts[0]["identities"] == [{"channel": "webchat", "address": "erik"}]
    one = await (await client.get(f"/api/contacts/{contacts[0]['id']}", headers=token)).json()
    assert [t["id"] for t in one["threads"]] == [thread_id]
    assert (await client.get(f"/api/contacts/{contacts[0]['id']}", headers=other)).status == 404

    made = await client.post("/api/agents", json={"login": "fred", "teams": ["sales"], "capacity": 3}, headers=token)
    created = await made.json()
    assert made.status == 201 and created["agent"]["capacity"] == 3 and len(created["password"]) >= 12
    assert "password_hash" not in created["agent"]
    assert (await client.post("/api/agents", json={"login": "fred"}, headers=token)).status == 409
    assert (await client.post("/api/agents", json={"login": "Bad Login"}, headers=token)).status == 400
    agent_id = created["agent"]["id"]
    patched = await client.patch(f"/api/agents/{agent_id}", json={"capacity": 7, "active": False}, headers=token)
    assert (await patched.json())["capacity"] == 7 and (await patched.json())["active"] is False
    assert (await client.get(f"/api/agents/{agent_id}", headers=other)).status == 404
    superadmin = next(
        a
        for a in (await (await client.get("/api/agents", headers=token)).json())["items"]
        if a["role"] == Role.SUPERADMIN
    )
    assert (await client.patch(f"/api/agents/{superadmin['id']}", json={"role": "agent"}, headers=token)).status == 403


async def test_channel_settings_through_the_api_are_sealed_and_never_returned(
    embedded: Any, db_name: str, start_client: Any
) -> None:
    client = await api_client(embedded, db_name, start_client)
    token = bearer(await issue_token(client.server.app[STORE], "shop2", "ops", ["read", "write"], "test"))
    bad = await client.put("/api/accounts/shop2/channels/telegram", json={"token": "123:abc"}, headers=token)
    assert bad.status == 400 and "webhook_secret" in (await bad.json())["detail"]
    ok = await client.put(
        "/api/accounts/shop2/channels/telegram",
        headers=token,
        json={"token": "123:very-secret-bot-token", "webhook_secret": "hook_secret-1"},
    )
    assert ok.status == 200 and (await ok.json())["keys"] == ["token", "webhook_secret"]
    raw = await raw_database_of(client.server.app[STORE]).accounts.find_one({"_id": "shop2"})  # at rest
    assert "very-secret-bot-token" not in str(raw) and raw["channels"]["telegram"]["token"].startswith("sealed:v2:")
    shown = await (await client.get("/api/accounts/shop2", headers=token)).json()
    assert shown["channels"]["telegram"] == {"settings": {}, "secrets": {"token": True, "webhook_secret": True}}
    account = await client.server.app[STORE].accounts.get_account("shop2")
    assert account is not None and account.channels["telegram"]["token"] == "123:very-secret-bot-token"


async def _every_page(client: TestClient, path: str, field: str) -> list[str]:
    """Page through a listing two at a time as its ``before`` parameters describe: the previous
    page's last record's time (and id)."""
    seen: list[str] = []
    params = {"limit": "2"}
    for _ in range(20):
        page = (await (await client.get(path, params=params)).json())["items"]
        seen += [item["id"] for item in page]
        if len(page) < 2:
            return seen
        params = {"limit": "2", "before": page[-1][field], "before_id": page[-1]["id"]}
    raise AssertionError(f"paging did not end: {seen}")


async def test_paging_neither_skips_nor_repeats_records_of_the_same_time(client: TestClient) -> None:
    """Threads (and contacts) written in the same millisecond — busy traffic does that — must not
    be lost at a page boundary: the time alone cannot say where the previous page stopped."""
    store = client.server.app[STORE]
    at = utcnow()
    times = [at] * 5 + [at - timedelta(seconds=1), at - timedelta(seconds=2)]
    await store.threads.import_threads(
        [
            Thread(
                id=f"thr_page_{n}",
                account_id="default",
                contact_id=f"con_page_{n}",
                channel="webchat",
                status=ThreadStatus.BOT,
                opened_at=t,
                last_message_at=t,
            )
            for n, t in enumerate(times)
        ]
    )
    await store.contacts.import_contacts(
        [Contact(id=f"con_page_{n}", account_id="default", created_at=t, updated_at=t) for n, t in enumerate(times)]
    )

    threads = await _every_page(client, "/api/threads", "last_message_at")
    contacts = await _every_page(client, "/api/contacts", "updated_at")
    assert sorted(threads) == [f"thr_page_{n}" for n in range(7)] and len(set(threads)) == 7
    assert sorted(contacts) == [f"con_page_{n}" for n in range(7)] and len(set(contacts)) == 7
    assert threads[-2:] == ["thr_page_5", "thr_page_6"]  # newest first all the same
