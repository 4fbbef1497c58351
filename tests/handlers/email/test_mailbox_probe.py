"""The mailbox Check's SMTP half against servers that misbehave after their greeting: each is a
``ProbeFailed`` in the server's words (shown on the Inboxes page), never an exception of the mail
library (a 500)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from bot.handlers.email.probe import ProbeFailed, check_mailbox, compose_test_mail
from bot.handlers.email.settings import EmailSettings


async def _server(answer_ehlo: bytes | None) -> tuple[asyncio.Server, int]:
    """An SMTP server that greets, then answers EHLO and HELO with ``answer_ehlo`` (``None``: hangs up)."""

    async def talk(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 mx.test ESMTP\r\n")
        await writer.drain()
        while line := await reader.readline():
            if line.upper().startswith((b"EHLO", b"HELO")) and answer_ehlo is not None:
                writer.write(answer_ehlo)
            elif line.upper().startswith(b"QUIT"):
                writer.write(b"221 bye\r\n")
            else:
                break
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(talk, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


@pytest.fixture
async def refusing() -> AsyncIterator[int]:
    server, port = await _server(b"554 5.7.1 no mail from you\r\n")
    async with server:
        yield port


@pytest.fixture
async def hanging_up() -> AsyncIterator[int]:
    server, port = await _server(None)
    async with server:
        yield port


def _settings(port: int) -> EmailSettings:
    return EmailSettings(address="help@shop.example", smtp_host="127.0.0.1", smtp_port=port, smtp_security="none")


async def test_a_server_that_refuses_ehlo_is_a_refusal_in_its_words(refusing: int) -> None:
    with pytest.raises(ProbeFailed) as failed:
        await check_mailbox(_settings(refusing), None)
    assert failed.value.fault == "provider"
    assert "554" in failed.value.reason and "no mail from you" in failed.value.reason


async def test_a_server_that_hangs_up_after_its_greeting_is_a_refusal(hanging_up: int) -> None:
    with pytest.raises(ProbeFailed) as failed:
        await check_mailbox(_settings(hanging_up), None)
    assert failed.value.fault in ("provider", "unreachable") and "SMTP 127.0.0.1" in failed.value.reason


def test_a_test_mail_from_a_name_with_a_line_break_is_one_line_headers() -> None:
    """An earlier release took any name: its line breaks become spaces rather than an error."""
    settings = _settings(25)
    mail = compose_test_mail(settings, "Shop\r\nBcc: all@x.example", "jane@client.example", "test from Shop\nDesk")
    assert mail["From"].addresses[0].display_name == "Shop Bcc: all@x.example"
    assert mail["Subject"] == "test from Shop Desk" and "Bcc" not in mail
