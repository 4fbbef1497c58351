"""A name with several addresses: the egress guard checks every one (one refused refuses the name,
as docs/security.md says) and the client tries each checked address in turn until one answers,
as any client does — the mail clients (SMTP, IMAP) through ``Egress.connect``, aiohttp through the
addresses ``GuardedResolver`` hands it. A fake name server answers for the test's names."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Sequence
from email.message import EmailMessage
from typing import Any

import aiohttp
import pytest
from aiohttp.abc import AbstractResolver, ResolveResult

from bot.handlers.email.imap import open_mailbox
from bot.handlers.email.settings import EmailSettings
from bot.handlers.email.smtp import send_mail
from bot.handlers.kit.egress import Egress, EgressRefused, HostRule, refusal
from bot.handlers.kit.protocol import PermanentSendError, RetryableSendError
from tests.fakes.listener import Listener
from tests.handlers.email.test_imap_sizes import LyingImap
from tests.mailservers import SmtpSink

DEAD = "127.0.0.2"  # nothing listens there: the servers below listen on 127.0.0.1 only
PUBLIC = "93.184.215.14"


def name_server(monkeypatch: pytest.MonkeyPatch, names: dict[str, Sequence[str]]) -> None:
    """The event loop's look-ups answer ``names`` (in that order) and ask the system for others."""
    loop = asyncio.get_running_loop()
    system = loop.getaddrinfo

    async def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> list[Any]:
        if host not in names:
            return await system(host, port, *args, **kwargs)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port)) for address in names[host]]

    monkeypatch.setattr(loop, "getaddrinfo", getaddrinfo)


def _mail() -> EmailMessage:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "help@alpha.example", "jane@client.example", "Hi"
    message.set_content("hello")
    return message


async def test_a_mail_server_is_reached_at_its_next_address_when_the_first_does_not_answer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sink, imap = SmtpSink(), LyingImap(0, honours_partial=True)
    await sink.start()
    await imap.start()
    name_server(monkeypatch, {"smtp.alpha.example": [DEAD, "127.0.0.1"], "imap.alpha.example": [DEAD, "127.0.0.1"]})
    guard = Egress([HostRule("smtp.alpha.example", sink.port), HostRule("imap.alpha.example", imap.port)])
    try:
        assert await guard.checked_addresses("smtp.alpha.example", sink.port) == [DEAD, "127.0.0.1"]
        sock = await guard.connect("smtp.alpha.example", sink.port)
        assert sock.getpeername() == ("127.0.0.1", sink.port)
        sock.close()
        settings = EmailSettings(
            address="help@alpha.example", smtp_host="smtp.alpha.example", smtp_port=sink.port, smtp_security="none"
        )
        await send_mail(settings, _mail(), guard)
        assert [recipients for recipients, _, _ in sink.received] == [["jane@client.example"]]
        reading = EmailSettings(
            address="help@alpha.example", imap_host="imap.alpha.example", imap_port=imap.port, imap_security="none"
        )
        client = await open_mailbox(reading, guard)  # greeted, logged in and the folder selected: connected
        assert imap.connections == 1
        await client.logout()
    finally:
        await sink.stop()
        await imap.stop()


async def test_when_no_address_answers_the_last_error_is_a_send_to_retry(monkeypatch: pytest.MonkeyPatch) -> None:
    name_server(monkeypatch, {"smtp.alpha.example": [DEAD, "127.0.0.3"]})
    guard = Egress([HostRule("smtp.alpha.example", 2525)])
    with pytest.raises(ConnectionRefusedError):
        await guard.connect("smtp.alpha.example", 2525)
    settings = EmailSettings(
        address="help@alpha.example", smtp_host="smtp.alpha.example", smtp_port=2525, smtp_security="none"
    )
    with pytest.raises(RetryableSendError, match="SMTP server unreachable"):
        await send_mail(settings, _mail(), guard)


async def test_a_name_with_one_refused_address_is_refused_whatever_its_others(monkeypatch: pytest.MonkeyPatch) -> None:
    sink = SmtpSink()
    await sink.start()
    # public first, loopback second: a client trying each would reach the loopback server
    name_server(monkeypatch, {"mixed.example": [PUBLIC, "127.0.0.1"]})
    try:
        with pytest.raises(EgressRefused, match=r"mixed.example resolves to 127.0.0.1, which is not a public"):
            await Egress().connect("mixed.example", sink.port)
        settings = EmailSettings(
            address="help@alpha.example", smtp_host="mixed.example", smtp_port=sink.port, smtp_security="none"
        )
        with pytest.raises(PermanentSendError, match="SMTP server not allowed"):
            await send_mail(settings, _mail(), Egress())
    finally:
        await sink.stop()
    assert sink.received == []


class Names(AbstractResolver):
    """aiohttp's name server for a test: every name has ``addresses``, in that order."""

    def __init__(self, *addresses: str) -> None:
        self.addresses = addresses

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            {
                "hostname": host,
                "host": address,
                "port": port,
                "family": socket.AF_INET,
                "proto": 0,
                "flags": socket.AI_NUMERICHOST,
            }
            for address in self.addresses
        ]

    async def close(self) -> None:
        pass


async def test_an_http_request_goes_to_the_next_checked_address_and_never_to_a_refused_one() -> None:
    listener = Listener()
    await listener.start("127.0.0.1")
    try:
        allowed = Egress([HostRule("api.alpha.example", listener.port)])
        async with aiohttp.ClientSession(connector=allowed.connector(names=Names(DEAD, "127.0.0.1"))) as session:
            async with session.get(f"http://api.alpha.example:{listener.port}/first") as response:
                assert response.status == 200
        async with aiohttp.ClientSession(connector=Egress().connector(names=Names(PUBLIC, "127.0.0.1"))) as session:
            with pytest.raises(aiohttp.ClientError) as caught:
                await session.get(f"http://mixed.example:{listener.port}/second")
        assert "mixed.example resolves to 127.0.0.1" in str(refusal(caught.value))
    finally:
        await listener.stop()
    assert listener.hits == ["/first"]
