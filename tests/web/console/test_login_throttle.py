"""Login throttling that slows guessing without locking the login's owner out: after the free
failures each attempt waits a delay that doubles up to a cap, refused attempts change nothing, and
the client address is read through the reverse proxies the settings name, and no others."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, make_mocked_request

from bot.keys import SETTINGS
from bot.web.console.login_throttle import LoginLimiter
from bot.web.keys import FIRST_ADMIN
from bot.web.proxies import client_address
from conversations.repositories import Repositories
from tests.conftest import make_settings
from tests.web.console.test_login_hardening import login_form


async def attempt(
    client: TestClient, token: str, login: str, password: str, forwarded_for: str | None = None
) -> tuple[int, int]:
    """One login post (as sent through a proxy when ``forwarded_for`` is given); returns
    ``(status, Retry-After or 0)``."""
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
    response = await client.post(
        "/login",
        allow_redirects=False,
        headers=headers,
        data={"login": login, "password": password, "csrf_token": token},
    )
    return response.status, int(response.headers.get("Retry-After", "0"))


async def test_the_owner_logs_in_once_the_short_delay_has_passed(
    embedded: Any, db_name: str, start_client: Any
) -> None:
    """Five wrong guesses (the default) make the next attempt wait seconds, not a window of minutes;
    guessing on meanwhile is refused and does not push the owner's wait back."""
    client = await start_client(make_settings(embedded.uri, db_name, console={"login_delay_seconds": 5}))
    login, password = client.server.app[FIRST_ADMIN]
    token = await login_form(client)
    assert [(await attempt(client, token, login, f"guess-{n}"))[0] for n in range(5)] == [401] * 5
    status, wait = await attempt(client, token, login, password)
    assert status == 429 and 1 <= wait <= 5, (status, wait)
    started = time.monotonic()
    for n in range(5):  # the attacker keeps going during the wait: each refused, nothing counted
        assert (await attempt(client, token, login, f"more-{n}"))[0] == 429
    await asyncio.sleep(max(0.0, wait - (time.monotonic() - started)) + 0.2)
    assert (await attempt(client, token, login, password))[0] == 303


async def test_the_wait_doubles_up_to_its_cap_and_refusals_change_nothing(store: Repositories) -> None:
    limiter = LoginLimiter(store, attempts=2, delay_seconds=1, max_delay_seconds=4, forget_seconds=60)
    assert [limiter.wait_after(n, 2) for n in range(7)] == [0, 0, 1000, 2000, 4000, 4000, 4000]
    assert await limiter.admit("default", "ann", "192.0.2.1") == 0
    before_ms = time.time() * 1000
    assert await limiter.admit("default", "ann", "192.0.2.1") == 0
    after_ms = time.time() * 1000
    counted = await store.sign_in.login_throttle("login:default:ann")
    assert counted is not None and counted["failures"] == 2
    assert before_ms + 1000 - 1 <= counted["wait_until_ms"] <= after_ms + 1000  # a second from the attempt
    assert await limiter.admit("default", "ann", "192.0.2.1") == 1  # refused: wait a second
    assert await store.sign_in.login_throttle("login:default:ann") == counted  # and nothing changed
    await limiter.succeeded("default", "ann", "192.0.2.1")
    assert await store.sign_in.login_throttle("login:default:ann") is None


async def test_clients_behind_a_trusted_proxy_are_throttled_apart(
    embedded: Any, db_name: str, start_client: Any
) -> None:
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
    # one client behind the proxy tries eight names (2 per name, 8 per address) and must wait...
    for n in range(8):
        assert (await attempt(client, token, f"user{n}", "wrong", "203.0.113.5"))[0] == 401
    assert (await attempt(client, token, "user9", "wrong", "203.0.113.5"))[0] == 429
    # ...while another client behind the same proxy is not held up by it
    assert (await attempt(client, token, login, password, "198.51.100.7"))[0] == 303


async def test_a_forged_forwarded_for_does_not_dodge_the_limit(embedded: Any, db_name: str, start_client: Any) -> None:
    """Without trusted proxies the header is ignored; with one, only the address it appended counts."""
    for n, proxies in enumerate(("", "127.0.0.1")):
        client = await start_client(
            make_settings(
                embedded.uri,
                f"{db_name}_{n}",
                server={"trusted_proxies": proxies},
                console={"login_attempts": 2, "login_delay_seconds": 60},
            )
        )
        token = await login_form(client)
        for guess in range(8):
            forged = f"198.51.100.{guess}" if not proxies else f"198.51.100.{guess}, 203.0.113.5"
            assert (await attempt(client, token, f"user{guess}", "wrong", forged))[0] == 401
        login, password = client.server.app[FIRST_ADMIN]
        through = "192.0.2.99" if not proxies else "192.0.2.99, 203.0.113.5"
        status, wait = await attempt(client, token, login, password, through)
        assert status == 429 and wait > 0, (proxies, status)


def request_from(peer: str, proxies: str, proxy_header: str = "x-forwarded-for", **headers: str) -> web.Request:
    app = web.Application()
    app[SETTINGS] = make_settings(
        "mongodb://127.0.0.1:1", "unused", server={"trusted_proxies": proxies, "proxy_header": proxy_header}
    )
    return make_mocked_request("GET", "/", headers=headers, app=app).clone(remote=peer)


def test_the_client_address_is_read_through_trusted_proxies_only() -> None:
    chain = "198.51.100.1, 203.0.113.5, 10.0.0.2"
    assert client_address(request_from("10.0.0.1", "", **{"X-Forwarded-For": chain})) == "10.0.0.1"
    assert client_address(request_from("192.0.2.8", "10.0.0.0/8", **{"X-Forwarded-For": chain})) == "192.0.2.8"
    assert client_address(request_from("10.0.0.1", "10.0.0.0/8", **{"X-Forwarded-For": chain})) == "203.0.113.5"
    assert client_address(request_from("10.0.0.1", "10.0.0.0/8", **{"X-Forwarded-For": "10.0.0.3"})) == "10.0.0.3"
    assert client_address(request_from("10.0.0.1", "10.0.0.0/8", **{"X-Forwarded-For": "junk, 10.0.0.3"})) == "10.0.0.3"
    assert (
        client_address(request_from("::1", "::1", "forwarded", Forwarded='for="[2001:db8::7]:4711"')) == "2001:db8::7"
    )
    forwarded = request_from("127.0.0.1", "127.0.0.1", "forwarded", Forwarded="for=192.0.2.60;proto=https")
    assert client_address(forwarded) == "192.0.2.60"
    mapped = request_from("::ffff:10.0.0.1", "10.0.0.0/8", **{"X-Forwarded-For": "192.0.2.4"})
    assert client_address(mapped) == "192.0.2.4"


def test_only_the_header_the_trusted_proxy_sets_is_read() -> None:
    """A proxy that writes ``Forwarded`` passes the client's own ``X-Forwarded-For`` through (and
    the other way round): only ``server.proxy_header`` is read."""
    both = {"Forwarded": "for=203.0.113.9", "X-Forwarded-For": "10.9.8.7"}
    assert client_address(request_from("127.0.0.1", "127.0.0.1", "forwarded", **both)) == "203.0.113.9"
    assert client_address(request_from("127.0.0.1", "127.0.0.1", "x-forwarded-for", **both)) == "10.9.8.7"
    only_forwarded = {"Forwarded": "for=203.0.113.9"}
    assert client_address(request_from("127.0.0.1", "127.0.0.1", **only_forwarded)) == "127.0.0.1"
    # the proxy's own element names nobody: what a client wrote before it is not read either
    client_written = {"Forwarded": "for=198.51.100.1, proto=https"}
    assert client_address(request_from("127.0.0.1", "127.0.0.1", "forwarded", **client_written)) == "127.0.0.1"


async def test_an_ipv6_client_counts_by_its_64(store: Repositories) -> None:
    """Whoever holds a /64 holds 2^64 addresses: the address throttle counts the block."""
    limiter = LoginLimiter(store, attempts=1, delay_seconds=60, max_delay_seconds=60, forget_seconds=60)
    assert [await limiter.admit("default", f"user{n}", f"2001:db8::{n + 1}") for n in range(4)] == [0] * 4
    assert await limiter.admit("default", "user9", "2001:db8::ffff:1") > 0  # same /64, a fresh address
    assert await limiter.admit("default", "user9", "2001:db8:0:1::1") == 0  # the next /64 is someone else
    assert await limiter.admit("default", "user10", "192.0.2.1") == 0
