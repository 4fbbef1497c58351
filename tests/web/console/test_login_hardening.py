"""Console sessions and logins under attack: session fixation, logout and disabled agents ending
sessions on the server, cookie flags behind HTTPS, and brute-force throttling that concurrent
guesses cannot outrun and whose wait lifts within its longest delay (two router processes sharing the count:
``tests/faults/test_login_processes.py``)."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
from aiohttp.test_utils import TestClient

from bot.keys import STORE
from bot.services.agents import add_agent
from bot.web.console.auth import SESSION_COOKIE
from bot.web.keys import FIRST_ADMIN
from conversations.agent_models import Role
from tests.conftest import make_settings
from tests.web.console.test_console import CSRF, console_csrf, log_in


def base(client: TestClient) -> str:
    return f"http://127.0.0.1:{client.server.port}"


async def with_cookie(
    client: TestClient, token: str, method: str = "GET", path: str = "/console", **options: Any
) -> int:
    """What a browser holding only this session cookie is answered (a jar of its own)."""
    async with aiohttp.ClientSession(cookies={SESSION_COOKIE: token}) as browser:
        async with browser.request(method, base(client) + path, allow_redirects=False, **options) as response:
            return response.status


async def test_a_planted_valid_session_is_replaced_at_login_and_dies(client: TestClient) -> None:
    """Fixation with a real session: the attacker logs in and plants their cookie in the victim's
    browser; the victim's login issues a new id, and the planted one stops working."""
    login, password = client.server.app[FIRST_ADMIN]  # type: ignore[misc]
    planted = (await log_in(client, login, password)).cookies[SESSION_COOKIE].value
    assert await with_cookie(client, planted) == 200
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as victim:
        page = await (await victim.get(base(client) + "/login")).text()
        victim.cookie_jar.update_cookies({SESSION_COOKIE: planted})
        response = await victim.post(
            base(client) + "/login",
            allow_redirects=False,
            data={"login": login, "password": password, "csrf_token": CSRF.search(page).group(1)},
        )  # type: ignore[union-attr]
        assert response.status == 303
        after = response.cookies[SESSION_COOKIE].value
    assert after != planted
    assert await with_cookie(client, planted) == 303  # sent to the login page
    assert await with_cookie(client, after) == 200


async def test_logout_ends_the_session_on_the_server(client: TestClient) -> None:
    login, password = client.server.app[FIRST_ADMIN]  # type: ignore[misc]
    token = (await log_in(client, login, password)).cookies[SESSION_COOKIE].value
    csrf = await console_csrf(client)
    response = await client.post("/logout", data={"csrf_token": csrf}, allow_redirects=False)
    assert response.status == 303 and response.headers["Location"] == "/login"
    store = client.server.app[STORE]
    admin = await store.agents.agent_by_login("default", login)
    assert admin is not None and await store.sign_in.agent_sessions(admin.id) == []
    # a copy of the old cookie (stolen, or kept by the browser) is worth nothing now
    assert await with_cookie(client, token) == 303
    assert (
        await with_cookie(client, token, "POST", "/console/shift", data={"action": "start", "csrf_token": csrf}) == 401
    )


async def test_a_disabled_agents_sessions_end(client: TestClient) -> None:
    store = client.server.app[STORE]
    agent, password = await add_agent(store, "default", "leaver", role=Role.AGENT)
    assert agent is not None
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as leaver:
        page = await (await leaver.get(base(client) + "/login")).text()
        await leaver.post(
            base(client) + "/login",
            data={"login": "leaver", "password": password, "csrf_token": CSRF.search(page).group(1)},
        )  # type: ignore[union-attr]
        assert (await leaver.get(base(client) + "/console", allow_redirects=False)).status == 200
        admin, admin_password = client.server.app[FIRST_ADMIN]  # type: ignore[misc]
        await log_in(client, admin, admin_password)
        disabled = await client.post(
            f"/admin/agents/{agent.id}",
            allow_redirects=False,
            data={"csrf_token": await console_csrf(client, "/admin"), "teams": "", "capacity": "5", "role": "agent"},
        )
        assert disabled.status == 303
        assert (await leaver.get(base(client) + "/console", allow_redirects=False)).status == 303
        assert await store.sign_in.agent_sessions(agent.id) == []
        # and the socket of the live feed is refused too
        async with leaver.get(base(client) + "/console/ws", allow_redirects=False) as socket:
            assert socket.status == 303


async def test_cookies_are_secure_behind_https_and_strict_everywhere(
    embedded: Any, db_name: str, start_client: Any
) -> None:
    plain_http = await start_client(make_settings(embedded.uri, f"{db_name}_a"))
    behind_tls = await start_client(
        make_settings(embedded.uri, f"{db_name}_b", server={"public_url": "https://support.shop.example"})
    )
    for client, secure in ((plain_http, False), (behind_tls, True)):
        login, password = client.server.app[FIRST_ADMIN]
        form = await client.get("/login")
        form_cookie = form.cookies["omnirouter_login"]
        assert bool(form_cookie["secure"]) is secure and form_cookie["httponly"] and form_cookie["samesite"] == "Strict"
        token = CSRF.search(await form.text()).group(1)  # type: ignore[union-attr]
        logged_in = await client.post(  # as the browser would send it over TLS (this test client speaks plain HTTP)
            "/login",
            allow_redirects=False,
            data={"login": login, "password": password, "csrf_token": token},
            headers={"Cookie": f"omnirouter_login={form_cookie.value}"},
        )
        session = logged_in.cookies[SESSION_COOKIE]
        assert session["httponly"] and session["samesite"] == "Strict" and session["path"] == "/"
        assert bool(session["secure"]) is secure, f"Secure={session['secure']!r} with https={secure}"


# --- brute force -------------------------------------------------------------------------------


async def login_form(client: TestClient) -> str:
    return CSRF.search(await (await client.get("/login")).text()).group(1)  # type: ignore[union-attr]


async def attempt(client: TestClient, token: str, login: str, password: str) -> tuple[int, int]:
    """One login post; returns ``(status, Retry-After or 0)``."""
    response = await client.post(
        "/login", allow_redirects=False, data={"login": login, "password": password, "csrf_token": token}
    )
    return response.status, int(response.headers.get("Retry-After", "0"))


async def test_concurrent_guesses_cannot_outrun_the_limit(embedded: Any, db_name: str, start_client: Any) -> None:
    """Each attempt is counted before its password is checked: twenty guesses sent at once get the
    same three checks as twenty sent one by one."""
    client = await start_client(
        make_settings(embedded.uri, db_name, console={"login_attempts": 3, "login_delay_seconds": 60})
    )
    login, password = client.server.app[FIRST_ADMIN]
    token = await login_form(client)
    results = await asyncio.gather(*(attempt(client, token, login, f"guess-{n}") for n in range(20)))
    statuses = sorted(status for status, _ in results)
    assert statuses.count(401) <= 3 and statuses.count(429) >= 17, statuses
    assert (await attempt(client, token, login, password))[0] == 429  # the right one waits too


async def test_one_address_trying_many_logins_is_throttled(embedded: Any, db_name: str, start_client: Any) -> None:
    client = await start_client(
        make_settings(embedded.uri, db_name, console={"login_attempts": 2, "login_delay_seconds": 60})
    )
    login, password = client.server.app[FIRST_ADMIN]
    token = await login_form(client)
    # 2 per name, 8 (4x) per address: eight names once each, then even a fresh name with the right password waits
    statuses = [(await attempt(client, token, f"user{n}", "wrong"))[0] for n in range(8)]
    assert statuses == [401] * 8
    status, wait = await attempt(client, token, login, password)
    assert status == 429 and wait > 0


async def test_the_wait_lifts_within_its_longest_delay(embedded: Any, db_name: str, start_client: Any) -> None:
    window = 3
    client = await start_client(
        make_settings(
            embedded.uri,
            db_name,
            console={"login_attempts": 2, "login_delay_seconds": window, "login_max_delay_seconds": window},
        )
    )
    login, password = client.server.app[FIRST_ADMIN]
    token = await login_form(client)
    assert [(await attempt(client, token, login, "wrong"))[0] for _ in range(2)] == [401, 401]
    status, wait = await attempt(client, token, login, password)
    assert status == 429 and 1 <= wait <= window
    await asyncio.sleep(wait + 0.2)
    assert (await attempt(client, token, login, password))[0] == 303
