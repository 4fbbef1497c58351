"""The egress guard on its own: which addresses are refused, how the operator allows a host by name,
which install hosts each purpose's guard allows, that aiohttp connects only to addresses the guard
checked (DNS rebinding), that every redirect hop is checked, and that a listener on 127.0.0.1
receives nothing it should not."""

from __future__ import annotations

import dataclasses
import fcntl
import ipaddress
import socket
import struct
from collections.abc import AsyncIterator
from email.message import EmailMessage

import aiohttp
import pytest
from aiohttp.abc import AbstractResolver, ResolveResult

from bot.handlers.email.settings import EmailSettings
from bot.handlers.email.smtp import send_mail
from bot.handlers.kit.egress import (
    Egress,
    EgressRefused,
    EgressUnresolved,
    GuardedResolver,
    HostRule,
    address_problem,
    parse_host_rules,
    refusal,
)
from bot.handlers.kit.egress_guards import EgressGuards
from bot.handlers.kit.protocol import PermanentSendError, RetryableSendError
from bot.setting_fields import SettingsError
from bot.settings import Settings, load_settings
from tests.fakes.listener import Listener


@pytest.fixture
async def listener() -> AsyncIterator[Listener]:
    server = Listener()
    await server.start()
    yield server
    await server.stop()


@pytest.mark.parametrize(
    "address, problem",
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("fd12::1", "private"),
        ("169.254.10.1", "link-local"),
        ("fe80::1", "link-local"),
        ("169.254.169.254", "a cloud metadata address"),
        ("fd00:ec2::254", "a cloud metadata address"),
        ("100.100.100.200", "a cloud metadata address"),
        ("100.64.0.1", "shared, carrier-grade NAT"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("240.0.0.1", "reserved"),
        ("198.51.100.7", "private"),
        ("::ffff:127.0.0.1", "loopback, as 127.0.0.1"),
        ("::ffff:10.0.0.1", "private, as 10.0.0.1"),
        ("64:ff9b::7f00:1", "loopback, as 127.0.0.1"),
        ("2002:a9fe:a9fe::", "a cloud metadata address, as 169.254.169.254"),
    ],
)
def test_addresses_that_are_not_public_are_named(address: str, problem: str) -> None:
    assert address_problem(ipaddress.ip_address(address)) == problem


@pytest.mark.parametrize(
    "address", ["93.184.215.14", "2606:4700:4700::1111", "::ffff:93.184.215.14", "2002:5db8:d70e::"]
)
def test_public_addresses_pass(address: str) -> None:
    assert address_problem(ipaddress.ip_address(address)) is None


def test_the_operator_names_hosts_with_or_without_a_port() -> None:
    rules = parse_host_rules(" Bot-API.lan. , rasa:5005,[FD00:0::5]:8081, 10.0.0.7 ")
    assert rules == (HostRule("bot-api.lan"), HostRule("rasa", 5005), HostRule("[fd00::5]", 8081), HostRule("10.0.0.7"))
    assert [str(rule) for rule in rules] == ["bot-api.lan", "rasa:5005", "[fd00::5]:8081", "10.0.0.7"]
    egress = Egress(rules)
    assert egress.allows_name("RASA", 5005) and egress.allows_name("fd00::5", 8081)
    assert not egress.allows_name("rasa", 5006) and not egress.allows_name("evil.lan", 80)
    # a rule without a port means the scheme's default port, 80 or 443, and no other
    assert egress.allows_name("bot-api.lan", 443) and egress.allows_name("bot-api.lan", 80)
    for port in (8081, 5005, 22, 27017):
        assert not egress.allows_name("bot-api.lan", port) and not egress.allows_name("10.0.0.7", port)
    for bad in ("a b", "http://x/y", "x:notaport", "user@host", "host/path"):
        with pytest.raises(ValueError):
            parse_host_rules(bad)


def test_a_bad_allow_list_stops_start_up_with_one_line() -> None:
    for env, key in (("OMNIROUTER_EGRESS_ALLOWED_DESTINATIONS", "egress.allowed_destinations"),):
        with pytest.raises(SettingsError) as caught:
            load_settings(None, env={env: "ok.lan, bad host"})
        message = str(caught.value)
        assert "\n" not in message and key in message and "'bad host'" in message
    good = load_settings(None, env={"OMNIROUTER_EGRESS_ALLOWED_DESTINATIONS": "bot-api.lan:8081"})
    assert good.egress.allowed_destinations == "bot-api.lan:8081"


def test_each_purpose_has_a_guard_allowing_only_the_install_hosts_typed_for_it() -> None:
    settings = (
        Settings()
        .replace("telegram", api_base="http://bot-api.lan:8081")
        .replace("whatsapp", api_base="http://graph.lan:9000")
        .replace("twilio", api_base="http://twilio.lan:7000")
        .replace("nlu", rasa_url="http://rasa.lan:5005")
        .replace("dialogue", action_endpoint="http://actions.lan:5055/webhook")
        .replace("egress", allowed_destinations="crm.lan, hooks.lan:8443")
    )
    guards = EgressGuards.from_settings(settings)
    # an account's HTTP actions (account_actions) reach none of the install's hosts: not the action server
    every = (guards.webhooks, guards.rasa, guards.actions, guards.account_actions, guards.telegram, guards.whatsapp)
    for (host, port), own in {
        ("bot-api.lan", 8081): guards.telegram,
        ("graph.lan", 9000): guards.whatsapp,
        ("rasa.lan", 5005): guards.rasa,
        ("actions.lan", 5055): guards.actions,
    }.items():
        assert [guard.allows_name(host, port) for guard in every] == [guard is own for guard in every], host
    for guard in every:  # the operator's hosts everywhere (no port: 80 and 443 only); Twilio's nowhere
        assert guard.allows_name("crm.lan", 443) and guard.allows_name("hooks.lan", 8443)
        assert not guard.allows_name("crm.lan", 5005) and not guard.allows_name("twilio.lan", 7000)
    public = EgressGuards.from_settings(Settings())  # the providers' public hosts are checked like any other
    assert not public.telegram.allows_name("api.telegram.org", 443)
    assert not public.whatsapp.allows_name("graph.facebook.com", 443)


def test_an_account_s_api_base_is_the_provider_s_the_install_s_for_that_channel_or_the_operator_s() -> None:
    settings = (
        Settings()
        .replace("telegram", api_base="http://bot-api.lan:8081")
        .replace("whatsapp", api_base="http://graph.lan:9000")
        .replace("nlu", rasa_url="http://rasa.lan:5005")
        .replace("egress", allowed_destinations="crm.lan")
    )
    guards = EgressGuards.from_settings(settings)
    telegram, whatsapp = guards.channel("telegram"), guards.whatsapp
    for url in ("https://api.telegram.org", "http://bot-api.lan:8081/", "https://crm.lan/x", "http://crm.lan/x"):
        assert telegram.refused_api_base(url) is None, url
    for url, refused in (
        ("http://bot-api.lan:8080", "bot-api.lan:8080"),
        ("http://crm.lan:8080/x", "crm.lan:8080"),
        ("http://graph.lan:9000", "graph.lan:9000"),
        ("http://rasa.lan:5005", "rasa.lan:5005"),
        ("http://127.0.0.1:8080/api/threads/t/resolve?", "127.0.0.1:8080"),
        ("https://graph.facebook.com", "graph.facebook.com:443"),
        ("http://[FD00:0::5]:8081/", "[fd00::5]:8081"),
    ):
        assert telegram.refused_api_base(url) == refused, url
    assert whatsapp.refused_api_base("https://graph.facebook.com/") is None
    assert whatsapp.refused_api_base("http://graph.lan:9000") is None
    assert whatsapp.refused_api_base("http://bot-api.lan:8081") == "bot-api.lan:8081"
    assert telegram.api_base_refusal("[fd00::5]:8081") == (
        "channels.telegram.api_base: [fd00::5]:8081 is not a host this install allows (use https://api.telegram.org, "
        "or ask the install's operator to allow it in egress.allowed_destinations)"
    )
    assert telegram.account_api_base("shop2", {}) == ("http://bot-api.lan:8081", "")
    assert telegram.account_api_base("shop2", {"api_base": "https://crm.lan"}) == ("https://crm.lan", "")
    url, why = whatsapp.account_api_base("shop2", {"api_base": "http://bot-api.lan:8081"})
    assert url == "http://bot-api.lan:8081" and why.startswith(
        "account shop2: channels.whatsapp.api_base: bot-api.lan:8081"
    )


async def test_a_listener_on_loopback_receives_nothing_by_address_or_by_name(listener: Listener) -> None:
    async with Egress().session() as session:
        for url in (
            listener.url,
            f"http://localhost:{listener.port}",
            f"http://[::ffff:127.0.0.1]:{listener.port}",
            f"http://[::1]:{listener.port}",
        ):
            with pytest.raises(aiohttp.ClientError) as caught:
                await session.get(url)
            assert refusal(caught.value) is not None, url
            assert "not a public address" in str(refusal(caught.value))
        with pytest.raises(aiohttp.ClientError) as caught:  # no proxy carries a guarded request past the check
            await session.get("http://example.invalid/", proxy=listener.url)
        assert refusal(caught.value) is not None
    assert listener.hits == []


async def test_a_host_the_operator_allows_is_reached_by_name(listener: Listener) -> None:
    async with Egress([HostRule("localhost", listener.port)]).session() as session:
        async with session.get(f"http://localhost:{listener.port}/ok") as response:
            assert response.status == 200
        with pytest.raises(aiohttp.ClientError):  # the name is allowed, not the address behind it
            await session.get(f"{listener.url}/by-address")
    assert listener.hits == ["/ok"]


async def test_a_redirect_from_an_allowed_host_to_one_that_is_not_is_refused(listener: Listener) -> None:
    redirector = Listener(redirect_to=listener.url)
    await redirector.start()
    try:
        async with Egress([HostRule("localhost", redirector.port)]).session() as session:
            with pytest.raises(aiohttp.ClientError) as caught:
                await session.post(f"http://localhost:{redirector.port}/bot1:x/sendMessage", data={"text": "hi"})
        assert "127.0.0.1 is not a public address (loopback)" in str(refusal(caught.value))
        assert redirector.hits == ["/bot1:x/sendMessage"] and listener.hits == []
    finally:
        await redirector.stop()


async def test_the_router_s_own_address_is_refused_even_for_an_allowed_name(listener: Listener) -> None:
    egress = Egress([HostRule("localhost")], listen=("127.0.0.1", listener.port))
    async with egress.session() as session:
        with pytest.raises(aiohttp.ClientError) as caught:
            await session.post(f"http://localhost:{listener.port}/api/threads/thr_1/resolve")
    assert "this router's own" in str(refusal(caught.value)) and listener.hits == []
    anywhere = Egress([HostRule("localhost", 8080), HostRule("localhost", 8081)], listen=("0.0.0.0", 8080))
    with pytest.raises(EgressRefused):
        await anywhere.check_address("localhost", 8080, "127.0.0.1")
    await anywhere.check_address("localhost", 8081, "127.0.0.1")  # another port on the same host is not ours
    await anywhere.check_address("example.com", 8080, "93.184.215.14")  # not an address of this machine


def machine_address() -> str:
    """An IPv4 address of one of this machine's interfaces other than loopback (skips the test if none)."""
    for _, name in socket.if_nameindex():
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            try:  # SIOCGIFADDR: the interface's IPv4 address
                answer = fcntl.ioctl(probe.fileno(), 0x8915, struct.pack("256s", name[:15].encode()))
            except OSError:
                continue
        address = socket.inet_ntoa(answer[20:24])
        if not ipaddress.ip_address(address).is_loopback:
            return address
    pytest.skip("this machine has no address but loopback")


@pytest.mark.parametrize("wildcard", ["*", "0.0.0.0", "", "::", "[::]"])
async def test_with_a_wildcard_listening_address_every_address_of_the_machine_is_the_router_s(wildcard: str) -> None:
    """``server.host = "*"`` listens on every address, as ``0.0.0.0`` does: a request to any address of
    this machine on the router's port is refused, even where private addresses are allowed."""
    address = machine_address()
    router = Listener()
    await router.start(address)
    try:
        egress = Egress([HostRule(address, router.port)], listen=(wildcard, router.port), private_ok=True)
        async with egress.session() as session:
            with pytest.raises(aiohttp.ClientError) as caught:
                await session.post(f"http://{address}:{router.port}/api/threads/thr_1/resolve")
        assert f"this router's own, port {router.port}" in str(refusal(caught.value)) and router.hits == []
        async with Egress([HostRule(address, router.port)], listen=(wildcard, router.port + 1)).session() as session:
            async with session.get(f"http://{address}:{router.port}/another-port") as response:
                assert response.status == 200  # the same machine on another port is not the router
    finally:
        await router.stop()


class ScriptedNames(AbstractResolver):
    """A name server whose answers a test scripts: one list of addresses per lookup, in turn."""

    def __init__(self, *answers: str) -> None:
        self.answers = list(answers)
        self.lookups: list[str] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.lookups.append(host)
        address = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        return [
            {
                "hostname": host,
                "host": address,
                "port": port,
                "family": socket.AF_INET,
                "proto": 0,
                "flags": socket.AI_NUMERICHOST,
            }
        ]

    async def close(self) -> None:
        pass


async def test_each_answer_of_the_name_server_is_checked_before_it_is_used() -> None:
    names = ScriptedNames("93.184.215.14", "127.0.0.1")  # public when checked, loopback the next time
    resolver = GuardedResolver(Egress(), names)
    assert [r["host"] for r in await resolver.resolve("rebind.example", 443)] == ["93.184.215.14"]
    with pytest.raises(EgressRefused, match=r"rebind.example resolves to 127.0.0.1, which is not a public address"):
        await resolver.resolve("rebind.example", 443)


class Only127001(Egress):
    """A policy for this test only: 127.0.0.1 counts as public, every other address as it should."""

    async def check_address(self, host: str, port: int, address: str) -> None:
        if address != "127.0.0.1":
            await super().check_address(host, port, address)


async def test_dns_rebinding_cannot_move_a_connection_to_an_address_that_was_not_checked() -> None:
    checked, rebound = Listener(), Listener()
    await checked.start("127.0.0.1")
    await rebound.start("127.0.0.2", checked.port)  # the same port on another loopback address
    names = ScriptedNames("127.0.0.1", "127.0.0.2")  # passes the check, then rebinds to a refused address
    try:
        # the cache and keep-alive off, so that every request resolves the name anew
        connector = Only127001().connector(names=names, use_dns_cache=False, force_close=True)
        async with aiohttp.ClientSession(connector=connector) as session:
            async with session.get(f"http://rebind.example:{checked.port}/first") as response:
                assert response.status == 200
            with pytest.raises(aiohttp.ClientError) as caught:
                await session.get(f"http://rebind.example:{checked.port}/second")
        assert "127.0.0.2, which is not a public address" in str(refusal(caught.value))
        assert names.lookups == ["rebind.example", "rebind.example"]  # one lookup per connection: the one checked
        assert checked.hits == ["/first"] and rebound.hits == []
    finally:
        await checked.stop()
        await rebound.stop()


async def test_a_pooled_connection_serves_only_the_host_it_was_checked_for(listener: Listener) -> None:
    names = ScriptedNames("127.0.0.1")  # both names lead to the listener
    connector = Egress([HostRule("allowed.example", listener.port)]).connector(names=names)
    async with aiohttp.ClientSession(connector=connector) as session:
        for path in ("/a", "/b"):
            async with session.get(f"http://allowed.example:{listener.port}{path}") as response:
                assert response.status == 200
        with pytest.raises(aiohttp.ClientError) as caught:  # the same address and port, but not the same host
            await session.get(f"http://other.example:{listener.port}/c")
    assert "other.example resolves to 127.0.0.1" in str(refusal(caught.value))
    assert listener.hits == ["/a", "/b"] and names.lookups == ["allowed.example", "other.example"]


async def test_a_url_an_account_gives_is_checked_when_saved_without_a_lookup() -> None:
    egress = Egress([HostRule("crm.lan")])
    assert await egress.check_url("https://actions.example.com/run") == HostRule("actions.example.com", 443)
    assert await egress.check_url("http://crm.lan:8080/hook") == HostRule("crm.lan", 8080)
    for url, reason in (
        ("ftp://files.example.com/", "http:// or https://"),
        ("https:///nohost", "http:// or https://"),
        ("http://127.0.0.1:9/x", "loopback"),
        ("http://[fd00:ec2::254]/", "metadata"),
        ("http://[::ffff:10.0.0.1]/", "private"),
    ):
        with pytest.raises(EgressRefused, match=reason):
            await egress.check_url(url)


async def test_the_telegram_client_goes_through_the_guard_also_after_it_was_closed(listener: Listener) -> None:
    """The Bot API client's session is the guard's, and so is the one it opens after being closed."""
    from bot.handlers.telegram.adapter import make_bot
    from bot.handlers.telegram.botapi import BotAPIUnreachable

    bot = make_bot("1:x", listener.url, Egress(), timeout=5)
    try:
        for _ in range(2):  # and again after the session was closed
            with pytest.raises(BotAPIUnreachable) as caught:
                await bot.get_webhook_info()
            assert "not a public address (loopback)" in str(refusal(caught.value))
            await bot.close()
    finally:
        await bot.close()
    assert listener.hits == []


async def test_a_mail_server_is_reached_only_at_a_checked_address_and_only_on_an_allowed_port() -> None:
    settings = (
        Settings()
        .replace("email", imap_host="imap.install.lan", smtp_host="smtp.install.lan")
        .replace("telegram", api_base="http://bot-api.lan:8081")
        .replace("egress", allowed_destinations="127.0.0.1:1993, mail.lan")
    )
    guard = EgressGuards.from_settings(settings).email
    assert await guard.checked_addresses("127.0.0.1", 1993) == ["127.0.0.1"]  # named with its port
    # allowed by name: another name of the same address is not
    for host, port in (("127.0.0.1", 25), ("localhost", 1993), ("10.0.0.5", 993), ("169.254.169.254", 1993)):
        with pytest.raises(EgressRefused):
            await guard.checked_addresses(host, port)
    # the install's own mail servers and other purposes' hosts are not an account's to use
    assert not guard.allows_name("imap.install.lan", 993) and not guard.allows_name("bot-api.lan", 8081)
    assert not guard.allows_name("mail.lan", 993)  # a rule without a port: 80 and 443 only
    with pytest.raises(EgressUnresolved, match="no address"):  # a refusal that may pass: sends retry
        await guard.checked_addresses("no-such-host.invalid", 993)
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "a@alpha.example", "b@beta.example", "x"
    unresolved = EmailSettings(address="a@alpha.example", smtp_host="no-such-host.invalid", smtp_port=2525)
    with pytest.raises(RetryableSendError, match="SMTP server not found"):
        await send_mail(unresolved, message, guard)
    with pytest.raises(PermanentSendError, match="not allowed"):
        await send_mail(dataclasses.replace(unresolved, smtp_host="10.0.0.5"), message, guard)
