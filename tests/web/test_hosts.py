"""The Host check: every route refuses a ``Host`` that is not one of the router's names with 421 and
one line (DNS rebinding); loopback names on any port, ``server.public_url``'s host,
``server.allowed_hosts`` and a specific listening address are answered."""

from __future__ import annotations

import logging
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from bot.keys import STORE
from bot.network_settings import ServerSettings
from bot.setting_fields import SettingsError
from bot.settings import load_settings
from bot.web.hosts import answered_hosts, host_check, host_name
from tests.conftest import make_settings
from tests.fakes.telegram_api import FakeBotAPI
from tests.handlers.channels import TG_SECRET, fixture
from tests.router.test_queue import customer_writes

ROUTES = [  # one of each kind: health, metrics, web chat page, console, login, API, webhook, static
    ("GET", "/healthz"),
    ("GET", "/metrics"),
    ("GET", "/chat"),
    ("GET", "/console"),
    ("POST", "/login"),
    ("GET", "/api/outbox"),
    ("POST", "/api/threads/thr_x/resolve"),
    ("POST", "/webhooks/telegram"),
    ("GET", "/static/console.css"),
    ("GET", "/no/such/page"),
]


async def test_every_kind_of_route_refuses_a_host_that_is_not_ours(client: TestClient) -> None:
    for method, path in ROUTES:
        for host in (
            "attacker.example",
            f"attacker.example:{client.server.port}",
            "127.0.0.1.attacker.example",
            "localhost.attacker.example:80",
            "",
        ):
            response = await client.request(method, path, headers={"Host": host})
            text = await response.text()
            assert response.status == 421, (method, path, host, response.status)
            assert "does not answer for host" in text and text.count("\n") <= 1
            if path.startswith("/api/"):
                assert (await response.json())["error"] == "misdirected_request"
            else:
                assert response.content_type == "text/plain"
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:  # the web chat's socket
        await client.ws_connect("/webchat/ws", headers={"Host": "attacker.example"})
    assert refused.value.status == 421


async def test_loopback_names_on_any_port_are_answered(client: TestClient) -> None:
    for host in ("localhost", "LOCALHOST:1", f"127.0.0.1:{client.server.port}", "[::1]:8080", "localhost."):
        assert (await client.get("/healthz", headers={"Host": host})).status == 200, host


async def test_public_url_allowed_hosts_and_the_listening_address_are_answered(
    embedded: Any, db_name: str, start_client: Any
) -> None:
    settings = make_settings(
        embedded.uri,
        db_name,
        server={
            "public_url": "https://chat.example.com/",
            "allowed_hosts": "support.example.org, Other.Example.NET",
            "host": "192.0.2.10",
        },
    )
    client = await start_client(settings)
    for host in (
        "chat.example.com",
        "chat.example.com:443",
        "Support.Example.Org",
        "other.example.net.:8443",
        "192.0.2.10:8080",
    ):
        assert (await client.get("/healthz", headers={"Host": host})).status == 200, host
    for host in ("example.com", "www.chat.example.com", "192.0.2.11", "chat.example.com.attacker.example"):
        assert (await client.get("/healthz", headers={"Host": host})).status == 421, host


async def test_a_rebinding_page_cannot_pass_the_console_s_origin_check_or_reach_the_api(client: TestClient) -> None:
    """A page at http://attacker.example:PORT whose name now resolves to 127.0.0.1: its requests name
    itself in both Host and Origin, so a comparison of the two would call them same-origin."""
    app = client.server.app
    thread_id = await customer_writes(app, "rita", "hello")
    rebound = f"attacker.example:{client.server.port}"
    headers = {"Host": rebound, "Origin": f"http://{rebound}", "Sec-Fetch-Site": "same-origin"}
    for path in ("/login", "/console/next", f"/api/threads/{thread_id}/resolve"):
        assert (await client.post(path, headers=headers, data="x")).status == 421
    assert (await app[STORE].threads.get_thread(thread_id)).status != "resolved"  # type: ignore[union-attr]


async def test_webhooks_signed_for_the_public_url_still_arrive(
    embedded: Any, db_name: str, start_client: Any, bot_api: FakeBotAPI
) -> None:
    settings = make_settings(
        embedded.uri,
        db_name,
        server={"public_url": "https://chat.example.com"},
        telegram={"token": "1:x", "webhook_secret": TG_SECRET, "api_base": bot_api.url},
    )
    client = await start_client(settings)
    response = await client.post(
        "/webhooks/telegram",
        json=fixture("telegram", "text"),
        headers={"Host": "chat.example.com", "X-Telegram-Bot-Api-Secret-Token": TG_SECRET},
    )
    assert response.status == 200 and (await response.json())["recorded"] == 1


def test_host_names_are_compared_without_port_case_or_final_dot() -> None:
    assert host_name("Chat.Example.COM.:8443") == "chat.example.com"
    assert host_name("[::1]:8080") == "[::1]" and host_name("::1") == "[::1]" and host_name("[::1") == "[::1"
    assert answered_hosts(ServerSettings()) == {"localhost", "127.0.0.1", "[::1]"}
    assert answered_hosts(ServerSettings(host="::", allowed_hosts="a.example,,b.example ")) == {
        "localhost",
        "127.0.0.1",
        "[::1]",
        "a.example",
        "b.example",
    }


async def test_an_address_is_compared_in_its_short_form_as_the_egress_guard_compares_it(client: TestClient) -> None:
    """One normaliser of hosts for the Host check and the egress guard, with one bracket rule."""
    from bot.handlers.kit.egress import HostRule, parse_host_rules

    assert host_name("[0:0:0:0:0:0:0:1]:8080") == "[::1]" and host_name("0:0::1") == "[::1]"
    assert host_name("[FD00:0::5]") == host_name("fd00::5") == "[fd00::5]" and host_name("127.0.0.1.") == "127.0.0.1"
    assert parse_host_rules("[0:0::1]:8080") == (HostRule(host_name("::1"), 8080),)
    for host in ("[0:0:0:0:0:0:0:1]", f"[0::1]:{client.server.port}"):
        assert (await client.get("/healthz", headers={"Host": host})).status == 200, host


def test_commands_on_this_machine_reach_a_router_on_every_address_by_a_name_it_answers() -> None:
    for host, url in (
        ("0.0.0.0", "http://127.0.0.1:8081"),
        ("::", "http://127.0.0.1:8081"),
        ("::1", "http://[::1]:8081"),
        ("192.0.2.10", "http://192.0.2.10:8081"),
    ):
        server = ServerSettings(host=host, port=8081)
        assert server.local_url == url and host_name(url.split("//")[1]) in answered_hosts(server)


def test_allowed_hosts_must_be_host_names() -> None:
    for bad in ("https://chat.example.com", "chat.example.com:443", "chat.example.com/path", "a b"):
        with pytest.raises(SettingsError, match=r"server.allowed_hosts .* is not a host name"):
            load_settings(env={"OMNIROUTER_ALLOWED_HOSTS": bad})
    assert load_settings(env={"OMNIROUTER_ALLOWED_HOSTS": "a.example, [2001:db8::1]"}).server.allowed_hosts


def test_the_start_up_log_says_which_hosts_are_answered(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="omnirouter")
    host_check(ServerSettings(host="0.0.0.0"))
    events = {r.getMessage(): getattr(r, "omnirouter_fields", {}) for r in caplog.records}
    assert events["web.hosts"] == {"hosts": "127.0.0.1,[::1],localhost"}
    assert "server.public_url or server.allowed_hosts" in events["web.hosts_loopback_only"]["hint"]
    caplog.clear()
    host_check(ServerSettings(host="0.0.0.0", public_url="https://chat.example.com"))
    assert [r.getMessage() for r in caplog.records] == ["web.hosts"]
