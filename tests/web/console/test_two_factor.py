"""Two-factor sign-in over HTTP: the second step owes a session nothing until a right code, each
code is good once, recovery codes once each, codes are throttled like passwords, the secret is
sealed in the store, an admin can require it (and reset an agent's), and so can the operator's
CLI. The same flows in Chromium: ``test_two_factor_browser.py``."""

from __future__ import annotations

import asyncio
import re
import time
from html import unescape
from typing import Any

import aiohttp
import pyotp
import pytest
from aiohttp.test_utils import TestClient

from bot.keys import STORE
from bot.services.agents import add_agent
from bot.settings import Settings
from bot.web.console.auth import SESSION_COOKIE, token_digest
from bot.web.console.totp import spaced as totp_spaced
from bot.web.console.two_factor import CHALLENGE_COOKIE
from bot.web.i18n import translate
from bot.web.keys import FIRST_ADMIN
from conversations.agent_models import Role
from conversations.client import StoreClient
from conversations.sign_in import SignInRepository
from tests import factories
from tests.cli.test_contacts import run as run_cli
from tests.conftest import make_settings, raw_database_of
from tests.web.console.test_console_socket import closed_within

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
KEY = re.compile(r'<code id="setup-key">([^<]+)</code>')
PASSWORD = "correct horse battery"
ON_ALREADY = "Two-factor sign-in is on already: turn it off first."


def code_at(secret: str, steps_ahead: int = 0) -> str:
    """The authenticator's code now, or ``steps_ahead`` 30-second steps later (still accepted)."""
    return pyotp.TOTP(secret).at(time.time() + 30 * steps_ahead)


class Browser:
    """One browser's cookie jar against the router."""

    def __init__(self, client: TestClient) -> None:
        self.base = f"http://127.0.0.1:{client.server.port}"
        self.http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))

    async def get(self, path: str) -> tuple[int, str, str]:
        async with self.http.get(self.base + path, allow_redirects=False) as response:
            return response.status, await response.text(), response.headers.get("Location", "")

    async def post(self, path: str, form: dict[str, str], csrf_from: str | None = None) -> tuple[int, str, str]:
        if csrf_from is not None:
            form = {**form, "csrf_token": unescape(CSRF.search((await self.get(csrf_from))[1]).group(1))}  # type: ignore[union-attr]
        async with self.http.post(self.base + path, data=form, allow_redirects=False) as response:
            return response.status, await response.text(), response.headers.get("Location", "")

    async def password(self, login: str, password: str = PASSWORD) -> tuple[int, str, str]:
        return await self.post("/login", {"login": login, "password": password}, csrf_from="/login")

    async def code(self, code: str) -> tuple[int, str, str]:
        return await self.post("/login/2fa", {"code": code}, csrf_from="/login/2fa")

    def cookie(self, name: str) -> str | None:
        found = [c.value for c in self.http.cookie_jar if c.key == name]
        return found[0] if found else None

    async def close(self) -> None:
        await self.http.close()


async def enable(browser: Browser) -> tuple[str, list[str]]:
    """Turn two-factor sign-in on from the agent's own page; returns (secret, recovery codes)."""
    assert (await browser.post("/console/security/setup", {}, csrf_from="/console/security"))[0] == 303
    status, page, _ = await browser.get("/console/security")
    secret = KEY.search(page).group(1).replace(" ", "")  # type: ignore[union-attr]
    status, qr, _ = await browser.get("/console/security/qr.svg")
    assert status == 200 and qr.lstrip().startswith("<?xml") and "<script" not in qr
    status, page, _ = await browser.post(
        "/console/security/confirm", {"code": code_at(secret)}, csrf_from="/console/security"
    )
    assert status == 200, page
    codes = re.findall(r"<li><code>([a-z0-9]{4}-[a-z0-9]{4})</code></li>", page)
    assert len(codes) == 10
    return secret, codes


async def test_the_second_step_grants_nothing_until_a_right_code_and_each_code_counts_once(
    client: TestClient, raw_database: Any
) -> None:
    store = client.server.app[STORE]
    agent, _ = await add_agent(store, "default", "ava", role=Role.AGENT, password=PASSWORD)
    assert agent is not None
    ava = Browser(client)
    try:
        assert (await ava.password("ava"))[0] == 303
        secret, codes = await enable(ava)
        stored = await raw_database.second_factors.find_one({"_id": agent.id})
        assert stored["secret"].startswith("sealed:") and secret not in str(stored)  # sealed at rest
        assert not any(code.replace("-", "") in str(stored) for code in codes)  # hashes only
        assert (await ava.post("/logout", {}, csrf_from="/console"))[0] == 303

        status, _, location = await ava.password("ava")
        assert status == 303 and location == "/login/2fa" and ava.cookie(SESSION_COOKIE) is None
        half = ava.cookie(CHALLENGE_COOKIE)
        assert half is not None
        # the half-done login opens nothing: not the console, not the admin pages, not the API
        async with aiohttp.ClientSession(cookies={CHALLENGE_COOKIE: half, SESSION_COOKIE: half}) as other:
            for path in ("/console", "/console/security", "/admin"):
                async with other.get(ava.base + path, allow_redirects=False) as response:
                    assert response.status == 303 and response.headers["Location"] == "/login", path
        assert (await ava.get("/console"))[2] == "/login"
        assert (await ava.code("000000"))[0] == 401
        ahead = code_at(secret, 1)
        status, _, location = await ava.code(ahead)
        assert status == 303 and location == "/console" and (await ava.get("/console"))[0] == 200
        await ava.post("/logout", {}, csrf_from="/console")

        assert (await ava.password("ava"))[0] == 303
        assert (await ava.code(ahead))[0] == 401  # replayed: refused
        assert (await ava.code(codes[0].upper()))[0] == 303  # a recovery code, as typed
        await ava.post("/logout", {}, csrf_from="/console")
        assert (await ava.password("ava"))[0] == 303
        assert (await ava.code(codes[0]))[0] == 401  # once only
        assert (await ava.code(codes[1]))[0] == 303
        logins = await factories.audit(store, action="login")
        assert [e.details.get("second_factor") for e in logins].count("recovery") == 2
    finally:
        await ava.close()


async def test_codes_are_throttled_like_passwords(embedded: Any, db_name: str, start_client: Any) -> None:
    client = await start_client(
        make_settings(embedded.uri, db_name, console={"login_attempts": 3, "login_delay_seconds": 60})
    )
    await add_agent(client.server.app[STORE], "default", "ava", role=Role.AGENT, password=PASSWORD)
    ava, other = Browser(client), Browser(client)
    try:
        await ava.password("ava")
        secret, _ = await enable(ava)
        # someone else who knows the password, in a browser without ava's device cookie
        assert (await other.password("ava"))[0] == 303  # the password counts until the code is right
        assert [(await other.code(f"{n:06d}"))[0] for n in range(2)] == [401, 401]
        assert (await other.code(code_at(secret, 1)))[0] == 429  # even the right one waits now
    finally:
        await ava.close()
        await other.close()


async def test_an_account_that_requires_it_sends_agents_to_set_it_up_first(client: TestClient) -> None:
    store = client.server.app[STORE]
    await add_agent(store, "default", "ava", role=Role.AGENT, password=PASSWORD)
    login, password = client.server.app[FIRST_ADMIN]  # type: ignore[misc]
    admin, ava = Browser(client), Browser(client)
    try:
        await admin.password(login, password)
        assert (await ava.password("ava"))[0] == 303  # logged in without it, for now
        status, page, _ = await admin.post("/admin/account/two-factor", {"require": "on"}, csrf_from="/admin/account")
        assert status == 409  # not before the admin uses it
        await enable(admin)
        assert (await admin.post("/admin/account/two-factor", {"require": "on"}, csrf_from="/admin/account"))[0] == 303
        assert (await admin.get("/admin/account"))[0] == 200  # the admin confirmed a code in this session: kept
        assert (await ava.get("/console"))[2] == "/login"  # logged out: she has no second factor
        status, _, location = await ava.password("ava")
        assert status == 303 and location == "/login/2fa/setup"
        assert (await ava.get("/console"))[2] == "/login"  # nothing else before it is set up
        status, page, _ = await ava.get("/login/2fa/setup")
        assert status == 200 and 'src="/login/2fa/qr.svg"' in page
        assert (await ava.get("/login/2fa/qr.svg"))[0] == 200
        secret = KEY.search(page).group(1).replace(" ", "")  # type: ignore[union-attr]
        status, page, _ = await ava.post("/login/2fa/setup", {"code": code_at(secret)}, csrf_from="/login/2fa/setup")
        assert status == 200 and page.count("<li><code>") == 10
        assert (await ava.get("/console"))[0] == 200
        # she cannot turn it off while the account requires it
        await ava.post("/console/security/disable", {"proof": PASSWORD}, csrf_from="/console/security")
        assert await store.sign_in.second_factor((await store.agents.agent_by_login("default", "ava")).id) is not None  # type: ignore[union-attr]
    finally:
        await admin.close()
        await ava.close()


async def test_an_admin_resets_an_agents_second_factor_and_the_agent_turns_it_off_with_a_password(
    client: TestClient,
) -> None:
    store = client.server.app[STORE]
    agent, _ = await add_agent(store, "default", "ava", role=Role.AGENT, password=PASSWORD)
    assert agent is not None
    login, password = client.server.app[FIRST_ADMIN]  # type: ignore[misc]
    admin, ava = Browser(client), Browser(client)
    try:
        await ava.password("ava")
        await enable(ava)
        assert (await ava.post("/console/security/disable", {"proof": "wrong"}, csrf_from="/console/security"))[
            0
        ] == 401
        assert (await ava.post("/console/security/disable", {"proof": PASSWORD}, csrf_from="/console/security"))[
            0
        ] == 303
        assert await store.sign_in.second_factor(agent.id) is None
        await enable(ava)
        await admin.password(login, password)
        assert "reset-two-factor-ava" in (await admin.get("/admin"))[1]
        status, _, _ = await admin.post(f"/admin/agents/{agent.id}/two-factor/reset", {}, csrf_from="/admin")
        assert status == 303
        assert await store.sign_in.second_factor(agent.id) is None and (await ava.get("/console"))[2] == "/login"
        resets = await factories.audit(store, action="agent.second_factor_reset")
        assert [e.target for e in resets].count(agent.id) == 1
        assert (await ava.password("ava"))[2] == "/console"  # the password alone again
    finally:
        await admin.close()
        await ava.close()


async def test_the_operator_resets_an_agents_second_factor_from_the_cli(client: TestClient, settings: Settings) -> None:
    store = client.server.app[STORE]
    agent, _ = await add_agent(store, "default", "ava", role=Role.AGENT, password=PASSWORD)
    assert agent is not None
    ava = Browser(client)
    try:
        await ava.password("ava")
        await enable(ava)
        code, out, err = await run_cli(settings, "agent", "reset-2fa", "ava")
        assert code == 0 and "two-factor sign-in of 'ava' in account 'default' reset" in out, err
        assert await store.sign_in.second_factor(agent.id) is None and (await ava.get("/console"))[2] == "/login"
        assert len(await factories.audit(store, action="agent.second_factor_reset", actor="cli")) == 1
        code, out, _ = await run_cli(settings, "agent", "reset-2fa", "ava")
        assert code == 0 and "nothing to reset" in out
        code, _, err = await run_cli(settings, "agent", "reset-2fa", "nobody", "--account", "default")
        assert code == 2 and err.strip() == "omnirouter: no agent 'nobody' in account 'default'"
    finally:
        await ava.close()


async def test_a_secret_being_set_up_is_shown_only_to_the_login_that_asked_for_it(client: TestClient) -> None:
    """Someone with only ava's password, in an account that requires two-factor sign-in, starts her
    set-up and leaves: ava's own set-up later gets another secret, and the one the intruder saw
    opens nothing — not at the login, not once ava has turned hers on."""
    store = client.server.app[STORE]
    await add_agent(store, "default", "ava", role=Role.AGENT, password=PASSWORD)
    await store.accounts.update_account("default", require_two_factor=True)
    intruder, ava = Browser(client), Browser(client)
    try:
        assert (await intruder.password("ava"))[2] == "/login/2fa/setup"
        intruders_page = (await intruder.get("/login/2fa/setup"))[1]
        seen = KEY.search(intruders_page).group(1).replace(" ", "")  # type: ignore[union-attr]
        intruders_form = unescape(CSRF.search(intruders_page).group(1))  # type: ignore[union-attr]

        assert (await ava.password("ava"))[2] == "/login/2fa/setup"
        status, page, _ = await ava.get("/login/2fa/setup")
        secret = KEY.search(page).group(1).replace(" ", "")  # type: ignore[union-attr]
        assert status == 200 and secret != seen
        assert (await ava.get("/login/2fa/setup"))[1].count(totp_spaced(secret)) == 1  # hers, again, on reload
        status, page, _ = await ava.post("/login/2fa/setup", {"code": code_at(secret)}, csrf_from="/login/2fa/setup")
        assert status == 200 and page.count("<li><code>") == 10

        # the intruder's half-done login confirms nothing, and its secret is no key to ava's login
        status, page, location = await intruder.post(
            "/login/2fa/setup", {"code": code_at(seen), "csrf_token": intruders_form}
        )
        assert page.count("<li><code>") == 0 and location.startswith("/login?expired")
        assert (await intruder.get("/login/2fa/qr.svg"))[0] == 404
        assert (await intruder.password("ava"))[2] == "/login/2fa"
        assert (await intruder.code(code_at(seen, 1)))[0] == 401
    finally:
        await intruder.close()
        await ava.close()


async def test_the_security_page_never_shows_another_sessions_pending_secret(client: TestClient) -> None:
    store = client.server.app[STORE]
    await add_agent(store, "default", "ava", role=Role.AGENT, password=PASSWORD)
    first, second = Browser(client), Browser(client)
    try:
        await first.password("ava")
        await second.password("ava")
        assert (await first.post("/console/security/setup", {}, csrf_from="/console/security"))[0] == 303
        shown = KEY.search((await first.get("/console/security"))[1]).group(1)  # type: ignore[union-attr]
        page = (await second.get("/console/security"))[1]
        assert shown not in page and 'id="start-setup"' in page
        assert (await second.get("/console/security/qr.svg"))[0] == 409
        status, _, _ = await second.post(
            "/console/security/confirm", {"code": code_at(shown.replace(" ", ""))}, csrf_from="/console/security"
        )
        assert (
            status == 409
            and (await store.sign_in.second_factor((await store.agents.agent_by_login("default", "ava")).id)).state
            == "pending"
        )  # type: ignore[union-attr]
    finally:
        await first.close()
        await second.close()


async def test_a_password_only_session_ends_once_the_account_requires_a_second_factor_whenever_it_began(
    client: TestClient,
) -> None:
    """The state the race leaves (a password-only login completing while an admin turns the
    requirement on, after its sessions were swept): the session is still refused, and its
    console socket closed."""
    store = client.server.app[STORE]
    await add_agent(store, "default", "ava", role=Role.AGENT, password=PASSWORD)
    await add_agent(store, "default", "bob", role=Role.AGENT, password=PASSWORD)
    ava, bob = Browser(client), Browser(client)
    try:
        await ava.password("ava")
        await enable(ava)  # her session passed a second factor by confirming one
        assert (await bob.password("bob"))[2] == "/console"
        async with bob.http.ws_connect(bob.base + "/console/ws") as socket:
            assert (await asyncio.wait_for(socket.receive(), 10)).type == aiohttp.WSMsgType.TEXT
            await store.accounts.update_account("default", require_two_factor=True)  # no session swept
            code, _ = await closed_within(socket, 6)
            assert code == 4401
        assert (await bob.get("/console"))[2] == "/login"
        assert (await ava.get("/console"))[0] == 200
    finally:
        await ava.close()
        await bob.close()


async def test_a_second_factor_that_does_not_open_gets_a_clear_answer_not_a_500(client: TestClient) -> None:
    store = client.server.app[STORE]
    ava_agent, _ = await add_agent(store, "default", "ava", role=Role.AGENT, password=PASSWORD)
    bob_agent, _ = await add_agent(store, "default", "bob", role=Role.AGENT, password=PASSWORD)
    assert ava_agent is not None and bob_agent is not None
    ava, bob = Browser(client), Browser(client)
    try:
        await ava.password("ava")
        await enable(ava)
        await bob.password("bob")
        await enable(bob)
        raw = raw_database_of(store)  # what someone who can write to the store plants
        bobs = await raw.second_factors.find_one({"_id": bob_agent.id})
        # bob's sealed secret copied onto ava's record: sealed for another field, it does not open there
        await raw.second_factors.update_one({"_id": ava_agent.id}, {"$set": {"secret": bobs["secret"]}})
        status, page, _ = await ava.get("/console/security")
        assert status == 200 and 'id="two-factor-unreadable"' in page and "ask an admin to reset it" in page
        await ava.post("/logout", {}, csrf_from="/console")
        status, page, _ = await ava.password("ava")
        assert status == 409 and "ask an admin to reset it" in page
        login, password = client.server.app[FIRST_ADMIN]  # type: ignore[misc]
        admin = Browser(client)
        try:
            await admin.password(login, password)
            assert (await admin.post(f"/admin/agents/{ava_agent.id}/two-factor/reset", {}, csrf_from="/admin"))[
                0
            ] == 303
        finally:
            await admin.close()
        assert (await ava.password("ava"))[2] == "/console"
    finally:
        await ava.close()
        await bob.close()


@pytest.mark.parametrize("lang", ["lv", "ru"])
async def test_the_sign_in_pages_refuse_in_the_visitors_language(client: TestClient, lang: str) -> None:
    """What the login, its second step and the security page answer when they refuse is catalogue
    text, in Latvian for a Latvian visitor or agent, in Russian for a Russian one."""
    store = client.server.app[STORE]
    agent, _ = await add_agent(store, "default", "ava", role=Role.AGENT, password=PASSWORD)
    assert agent is not None
    await store.agents.update_agent(agent.id, lang=lang)
    ava = Browser(client)
    try:
        async with ava.http.post(
            ava.base + f"/login?lang={lang}",
            data={"login": "ava", "password": PASSWORD},
            headers={"Sec-Fetch-Site": "cross-site"},
        ) as response:
            assert response.status == 403 and await response.text() == translate(
                lang, "Logins from another site's page are refused."
            )
        async with ava.http.post(
            ava.base + f"/login?lang={lang}", data={"login": "ava", "password": PASSWORD}
        ) as response:
            assert response.status == 403 and await response.text() == translate(
                lang, "The login form expired: reload the page."
            )
        await ava.password("ava")
        assert (await ava.get("/console/security/qr.svg"))[1] == translate(
            lang, "No authenticator is being set up here: start setting up two-factor sign-in first."
        )
        await enable(ava)
        status, text, _ = await ava.post("/console/security/setup", {}, csrf_from="/console/security")
        assert status == 409 and text == translate(lang, ON_ALREADY) != ON_ALREADY
    finally:
        await ava.close()


async def test_the_store_keeps_one_kind_of_digest_for_every_cookie_token(client: TestClient) -> None:
    """Sessions and half-done logins alike: the SHA-256 of the cookie's token (``auth.token_digest``)."""
    store = client.server.app[STORE]
    await add_agent(store, "default", "ava", role=Role.AGENT, password=PASSWORD)
    ava = Browser(client)
    try:
        await ava.password("ava")
        session = ava.cookie(SESSION_COOKIE)
        assert session is not None and await store.sign_in.get_session(token_digest(session)) is not None
        await enable(ava)
        await ava.post("/logout", {}, csrf_from="/console")
        await ava.password("ava")
        challenge = ava.cookie(CHALLENGE_COOKIE)
        assert challenge is not None and await store.sign_in.login_challenge(token_digest(challenge), 0) is not None
    finally:
        await ava.close()


def test_the_second_factors_are_sealed_with_the_one_key_of_the_client() -> None:
    """No repository has a sealing of its own that could stand in for the real one (and raise at
    every read): second factors, like channel and webhook secrets, go through the client's."""
    assert "seal_value" not in vars(SignInRepository) and "open_value" not in vars(SignInRepository)
    assert callable(StoreClient.seal_value) and callable(StoreClient.open_value)
