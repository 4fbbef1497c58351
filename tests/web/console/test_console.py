"""The console over HTTP: logins, sessions, CSRF, roles, rate limits, and live updates that
cross router instances (polling and change-stream feeds)."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from bot.keys import STORE
from bot.services.agents import add_agent
from bot.web.keys import FIRST_ADMIN
from conversations.agent_models import Role
from conversations.repositories import Repositories
from tests.conftest import make_settings
from tests.nlu.conftest import install, starter_blob  # noqa: F401 (the session's starter model)
from tests.router.test_queue import customer_writes

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


async def log_in(client: TestClient, login: str, password: str) -> aiohttp.ClientResponse:
    page = await (await client.get("/login")).text()
    token = CSRF.search(page).group(1)  # type: ignore[union-attr]
    return await client.post(
        "/login", data={"login": login, "password": password, "csrf_token": token}, allow_redirects=False
    )


async def console_csrf(client: TestClient, path: str = "/console") -> str:
    return CSRF.search(await (await client.get(path)).text()).group(1)  # type: ignore[union-attr]


async def test_login_issues_a_fresh_hardened_session(client: TestClient) -> None:
    login, password = client.server.app[FIRST_ADMIN]  # type: ignore[misc]
    client.session.cookie_jar.update_cookies({"omnirouter_session": "planted-by-an-attacker"})
    response = await log_in(client, login, password)
    assert response.status == 303 and response.headers["Location"] == "/console"
    cookie = response.cookies["omnirouter_session"]
    assert cookie.value != "planted-by-an-attacker" and len(cookie.value) >= 40
    assert cookie["httponly"] and cookie["samesite"] == "Strict"
    page = await client.get("/console")
    assert page.status == 200
    csp = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
    # the store never holds the cookie's token itself
    assert await client.server.app[STORE].sign_in.get_session(cookie.value) is None


async def test_posts_without_the_csrf_token_are_refused(client: TestClient) -> None:
    login, password = client.server.app[FIRST_ADMIN]  # type: ignore[misc]
    await log_in(client, login, password)
    assert (await client.post("/console/shift", data={"action": "start"})).status == 403
    assert (await client.post("/console/shift", data={"action": "start", "csrf_token": "guess"})).status == 403
    token = await console_csrf(client)
    done = await client.post("/console/shift", data={"action": "start", "csrf_token": token}, allow_redirects=False)
    assert done.status == 303
    # the login form has its own token too
    assert (await client.post("/login", data={"login": login, "password": password})).status == 403


async def test_agents_are_refused_on_admin_pages(client: TestClient) -> None:
    store = client.server.app[STORE]
    _agent, password = await add_agent(store, "default", "plain", role=Role.AGENT)
    await log_in(client, "plain", password)
    assert (await client.get("/admin")).status == 403
    token = await console_csrf(client)
    refused = await client.post("/admin/agents", data={"login": "sneaky", "role": "admin", "csrf_token": token})
    assert refused.status == 403 and await store.agents.agent_by_login("default", "sneaky") is None
    assert (await client.get("/admin/timesheet.csv")).status == 403


async def test_logged_out_visitors_are_sent_to_the_login_page(client: TestClient) -> None:
    response = await client.get("/console", allow_redirects=False)
    assert response.status == 303 and response.headers["Location"] == "/login"
    assert (await client.post("/console/next")).status == 401


async def test_failed_logins_are_rate_limited(embedded: Any, db_name: str, start_client: Any) -> None:
    settings = make_settings(embedded.uri, db_name, console={"login_attempts": 3})
    client = await start_client(settings)
    login, password = client.server.app[FIRST_ADMIN]
    statuses = [(await log_in(client, login, "wrong")).status for _ in range(3)]
    assert statuses == [401, 401, 401]
    blocked = await log_in(client, login, password)  # even the right password waits now
    assert blocked.status == 429 and int(blocked.headers["Retry-After"]) > 0


async def age_sessions(store: Repositories, agent_id: str, *, idle_ms: int = 0, age_ms: int = 0) -> None:
    """Make the agent's sessions look ``idle_ms`` idle and ``age_ms`` old (as time passing would)."""
    for session in await store.sign_in.agent_sessions(agent_id):
        if age_ms:
            await store.sign_in.delete_session(session.id)
            await store.sign_in.create_session(dataclasses.replace(session, created_ms=session.created_ms - age_ms))
        if idle_ms:
            await store.sign_in.touch_session(session.id, session.seen_ms - idle_ms)


async def test_idle_and_absolute_timeouts_end_sessions(client: TestClient) -> None:
    login, password = client.server.app[FIRST_ADMIN]  # type: ignore[misc]
    store = client.server.app[STORE]
    admin = await store.agents.agent_by_login("default", login)
    assert admin is not None
    await log_in(client, login, password)
    await age_sessions(store, admin.id, idle_ms=31 * 60_000)  # 31 idle minutes
    assert (await client.get("/console", allow_redirects=False)).status == 303
    assert await store.sign_in.agent_sessions(admin.id) == []
    await log_in(client, login, password)
    await age_sessions(store, admin.id, age_ms=13 * 3_600_000)  # active, but 13 h old
    assert (await client.get("/console", allow_redirects=False)).status == 303


async def test_the_timesheet_exports_shifts_as_csv(embedded: Any, db_name: str, start_client: Any) -> None:
    settings = make_settings(embedded.uri, db_name, console={"record_location": True})
    client = await start_client(settings)
    login, password = client.server.app[FIRST_ADMIN]
    await log_in(client, login, password)
    token = await console_csrf(client)
    await client.post("/console/shift", data={"action": "start", "csrf_token": token, "lat": "56.95", "lon": "24.11"})
    await client.post(
        "/console/shift", data={"action": "stop", "csrf_token": token, "lat": "56.96", "lon": "24.12", "accuracy": "12"}
    )
    response = await client.get("/admin/timesheet.csv")
    assert response.status == 200 and response.content_type == "text/csv"
    header, row = (await response.text()).strip().splitlines()
    assert header.startswith("agent,shift,started_at,ended_at,duration_s,start_lat")
    fields = row.split(",")
    assert fields[0] == "admin" and fields[3] and fields[4] == "0"
    assert fields[5:] == ["56.95", "24.11", "", "56.96", "24.12", "12.0"]


@pytest.mark.parametrize("feed", ["poll", "change_stream"])
async def test_a_console_on_one_instance_sees_a_message_recorded_by_another(
    embedded: Any, db_name: str, start_client: Any, feed: str
) -> None:
    settings = make_settings(embedded.uri, db_name, console={"live_feed": feed, "poll_interval": 0.05})
    agent_side = await start_client(settings)
    customer_side = (await start_client(settings)).server.app
    login, password = agent_side.server.app[FIRST_ADMIN]
    await log_in(agent_side, login, password)
    async with agent_side.ws_connect("/console/ws") as ws:
        first = await ws.receive_str(timeout=10)
        assert 'id="queue"' in first and "Nobody is waiting" in first
        await customer_writes(customer_side, "live-visitor", "<img src=x onerror=alert(1)>")
        for _ in range(10):
            pushed = await ws.receive_str(timeout=10)
            if 'id="queue"' in pushed and "live-visitor" in pushed:
                break
        assert 'hx-swap-oob="true"' in pushed
        thread_id = re.search(r"thread=(thr_\w+)", pushed).group(1)  # type: ignore[union-attr]
    async with agent_side.ws_connect(f"/console/ws?thread={thread_id}") as ws:
        for _ in range(10):
            pushed = await ws.receive_str(timeout=10)
            if 'id="history"' in pushed:
                break
        assert "&lt;img src=x onerror=alert(1)&gt;" in pushed and "<img src=x" not in pushed


@pytest.mark.parametrize("feed", ["poll", "change_stream"])
async def test_a_console_on_one_instance_sees_the_bots_answer_given_by_another(
    embedded: Any, db_name: str, start_client: Any, store: Repositories, starter_blob: bytes, feed: str
) -> None:
    """A bot's answer writes no event of its own: the console hears of it from the reply stored."""
    await install(store, starter_blob)
    settings = make_settings(embedded.uri, db_name, console={"live_feed": feed, "poll_interval": 0.05})
    agent_side = await start_client(settings)
    customer_side = (await start_client(settings)).server.app
    thread_id = await customer_writes(customer_side, "asks-the-bot", "hello")
    login, password = agent_side.server.app[FIRST_ADMIN]
    await log_in(agent_side, login, password)
    async with agent_side.ws_connect(f"/console/ws?thread={thread_id}") as ws:
        assert 'id="history"' in await ws.receive_str(timeout=10)  # the whole page, on connect
        await customer_writes(customer_side, "asks-the-bot", "what are your opening hours", n=1)
        for _ in range(20):
            pushed = await ws.receive_str(timeout=10)
            if 'id="history"' in pushed and "what are your opening hours" in pushed:
                break
        else:
            raise AssertionError("the console never showed the answered message")
    events = await store.events.events_since(0)
    assert not [e for e in events if e.get("kind") == "message" and e.get("thread_id") == thread_id]
    replies = [m for m in await store.messages.thread_messages(thread_id) if str(m.direction) == "out"]
    assert len(replies) == 2 and all(m.sender.get("kind") == "bot" for m in replies)


async def test_console_sockets_refuse_other_origins(client: TestClient) -> None:
    login, password = client.server.app[FIRST_ADMIN]  # type: ignore[misc]
    await log_in(client, login, password)
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await client.ws_connect("/console/ws", headers={"Origin": "https://evil.example"})
    assert refused.value.status == 403
