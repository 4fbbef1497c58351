"""Device cookies: a guesser who keeps a login's wait running (polling for every slot) does not keep
its owner out of a browser they signed in with before; the cookie is signed for that one login,
long-lived and hardened, and one that keeps failing is revoked. Refused attempts cost the address
that makes them."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from html import unescape
from typing import Any

import aiohttp
from aiohttp.test_utils import TestClient
from yarl import URL

from bot.keys import STORE
from bot.services.agents import add_agent
from bot.web.console.login_throttle import DEVICE_COOKIE, DEVICE_DAYS
from bot.web.keys import FIRST_ADMIN
from conversations.agent_models import Role
from tests.conftest import make_settings, raw_database_of
from tests.web.console.test_login_hardening import login_form
from tests.web.console.test_login_throttle import attempt
from tests.web.console.test_two_factor import CSRF, PASSWORD, Browser

LIMITS = {"login_attempts": 2, "login_delay_seconds": 1, "login_max_delay_seconds": 4}


def device_cookies(browser: Browser) -> dict[str, str]:
    return {c.key: c.value for c in browser.http.cookie_jar if c.key.startswith(DEVICE_COOKIE)}


@contextlib.asynccontextmanager
async def guessing(client: TestClient, login: str) -> AsyncIterator[list[int]]:
    """A guesser posting wrong passwords for ``login`` without pause (a browser of its own, with
    no device cookie), from the same address as everyone else here; yields the statuses it got."""
    statuses: list[int] = []

    async def guess() -> None:
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as own:
            base = f"http://127.0.0.1:{client.server.port}"
            page = await (await own.get(base + "/login")).text()
            token = page.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
            while True:
                async with own.post(
                    base + "/login",
                    allow_redirects=False,
                    data={"login": login, "password": f"guess-{len(statuses)}", "csrf_token": token},
                ) as r:
                    statuses.append(r.status)
                await asyncio.sleep(0.02)

    task = asyncio.create_task(guess())
    try:
        while statuses.count(429) < 3:  # the login waits now
            await asyncio.sleep(0.05)
        yield statuses
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_a_guesser_polling_a_login_does_not_keep_its_owner_out(
    embedded: Any, db_name: str, start_client: Any
) -> None:
    client = await start_client(make_settings(embedded.uri, db_name, console=LIMITS))
    await add_agent(client.server.app[STORE], "default", "ava", role=Role.AGENT, password=PASSWORD)
    ava = Browser(client)
    try:
        assert (await ava.password("ava"))[2] == "/console"  # once: this browser is ava's now
        assert len(device_cookies(ava)) == 1
        await ava.post("/logout", {}, csrf_from="/console")
        async with guessing(client, "ava") as statuses:
            for _ in range(5):  # while the guesser takes every slot, ava logs in each time at once
                status, _, location = await ava.password("ava")
                assert (status, location) == (303, "/console"), status
                await ava.post("/logout", {}, csrf_from="/console")
                await asyncio.sleep(0.3)
            assert statuses.count(429) > 2 * statuses.count(401)  # the guesser, meanwhile, mostly waits
        # a browser without the cookie (ava on a new computer) waits like the guesser
        newcomer = Browser(client)
        try:
            assert (await newcomer.password("ava"))[0] == 429
        finally:
            await newcomer.close()
    finally:
        await ava.close()


async def test_the_device_cookie_is_hardened_long_lived_and_signed_with_a_sealed_key(
    embedded: Any, db_name: str, start_client: Any
) -> None:
    client = await start_client(
        make_settings(embedded.uri, db_name, server={"public_url": "https://support.shop.example"})
    )
    store = client.server.app[STORE]
    await add_agent(store, "default", "ava", role=Role.AGENT, password=PASSWORD)
    token = await login_form(client)
    response = await client.post(
        "/login",
        allow_redirects=False,
        data={  # as a browser would send it over TLS
            "login": "ava",
            "password": PASSWORD,
            "csrf_token": token,
        },
        headers={"Cookie": f"omnirouter_login={token}"},
    )
    device = [morsel for name, morsel in response.cookies.items() if name.startswith(DEVICE_COOKIE)]
    assert response.status == 303 and len(device) == 1
    cookie = device[0]
    assert cookie["httponly"] and cookie["samesite"] == "Strict" and cookie["secure"] and cookie["path"] == "/"
    assert int(cookie["max-age"]) == DEVICE_DAYS * 86400
    raw = raw_database_of(store)  # at rest: sealed
    assert await raw.secrets.count_documents({"_id": "login-device-cookies", "value": {"$regex": "^sealed:"}}) == 1


async def test_a_device_cookie_counts_only_for_its_own_login_and_only_as_signed(
    embedded: Any, db_name: str, start_client: Any
) -> None:
    client = await start_client(
        make_settings(
            embedded.uri, db_name, console={**LIMITS, "login_delay_seconds": 60, "login_max_delay_seconds": 60}
        )
    )
    await add_agent(client.server.app[STORE], "default", "ava", role=Role.AGENT, password=PASSWORD)
    ava = Browser(client)
    try:
        assert (await ava.password("ava"))[0] == 303
        await ava.post("/logout", {}, csrf_from="/console")
        token = await login_form(client)
        admin_login, admin_password = client.server.app[FIRST_ADMIN]
        for login in ("ava", admin_login):  # both logins wait now
            assert [(await attempt(client, token, login, f"guess-{n}"))[0] for n in range(3)] == [401, 401, 429]
        assert (await ava.password(admin_login, admin_password))[0] == 429  # ava's cookie is nobody else's
        [(name, value)] = device_cookies(ava).items()
        forged = value[:-1] + ("A" if value[-1] != "A" else "B")
        ava.http.cookie_jar.update_cookies({name: forged}, URL(ava.base))
        assert device_cookies(ava) == {name: forged}
        assert (await ava.password("ava"))[0] == 429  # an altered signature is no device cookie
        ava.http.cookie_jar.update_cookies({name: value}, URL(ava.base))
        assert (await ava.password("ava"))[0] == 303
    finally:
        await ava.close()


async def test_a_device_cookie_that_keeps_failing_is_revoked(embedded: Any, db_name: str, start_client: Any) -> None:
    client = await start_client(
        make_settings(
            embedded.uri, db_name, console={**LIMITS, "login_delay_seconds": 60, "login_max_delay_seconds": 60}
        )
    )
    store = client.server.app[STORE]
    await add_agent(store, "default", "ava", role=Role.AGENT, password=PASSWORD)
    ava = Browser(client)
    try:
        assert (await ava.password("ava"))[0] == 303
        await ava.post("/logout", {}, csrf_from="/console")
        token = await login_form(client)
        assert [(await attempt(client, token, "ava", f"guess-{n}"))[0] for n in range(3)] == [401, 401, 429]
        # the cookie's own free failures (2 here), then it is revoked and its browser waits like any other
        assert [(await ava.password("ava", f"typo-{n}"))[0] for n in range(2)] == [401, 401]
        assert (await ava.password("ava"))[0] == 429
        revoked = {"_id": {"$regex": "^device:"}, "revoked": True}  # at rest: the cookie's count, revoked
        assert await raw_database_of(store).login_failures.count_documents(revoked) == 1
        assert (await ava.password("ava"))[0] == 429  # and stays revoked
    finally:
        await ava.close()


async def test_refused_attempts_cost_the_address_that_makes_them(
    embedded: Any, db_name: str, start_client: Any
) -> None:
    """Polling a login's wait is no longer free: each refused attempt counts on the client's address
    (4 x 2 = 8 here), and then that address waits for any login, while other addresses do not."""
    client = await start_client(
        make_settings(
            embedded.uri,
            db_name,
            server={"trusted_proxies": "127.0.0.1, ::1"},
            console={"login_attempts": 2, "login_delay_seconds": 60},
        )
    )
    login, password = client.server.app[FIRST_ADMIN]
    token = await login_form(client)
    guesser = "203.0.113.5"
    statuses = [(await attempt(client, token, "ava", f"guess-{n}", guesser))[0] for n in range(8)]
    assert statuses == [401, 401] + [429] * 6
    status, wait = await attempt(client, token, login, password, guesser)  # another login, the right password
    assert status == 429 and wait > 0
    assert (await attempt(client, token, login, password, "198.51.100.7"))[0] == 303


async def test_concurrent_guesses_with_a_device_cookie_get_only_its_free_checks(
    embedded: Any, db_name: str, start_client: Any
) -> None:
    """A stolen device cookie is no way round the count: twenty guesses sent with it at once, while
    the login waits, get the cookie's three password checks and no more (counted before the check)."""
    client = await start_client(
        make_settings(embedded.uri, db_name, console={"login_attempts": 3, "login_delay_seconds": 60})
    )
    await add_agent(client.server.app[STORE], "default", "ava", role=Role.AGENT, password=PASSWORD)
    ava = Browser(client)
    try:
        assert (await ava.password("ava"))[0] == 303
        await ava.post("/logout", {}, csrf_from="/console")
        token = await login_form(client)
        assert [(await attempt(client, token, "ava", f"guess-{n}"))[0] for n in range(4)] == [401] * 3 + [429]
        form = unescape(CSRF.search((await ava.get("/login"))[1]).group(1))  # type: ignore[union-attr]

        async def guess(n: int) -> int:
            async with ava.http.post(
                ava.base + "/login",
                allow_redirects=False,
                data={"login": "ava", "password": f"stolen-{n}", "csrf_token": form},
            ) as response:
                return response.status

        statuses = sorted(await asyncio.gather(*(guess(n) for n in range(20))))
        assert statuses.count(401) <= 3 and statuses.count(429) >= 17, statuses
    finally:
        await ava.close()
