"""The mailbox reader leaves no connection open when its IMAP server refuses it: a wrong password
(a tenant's typo) is retried with backoff, and each refused connection is closed, not kept."""

from __future__ import annotations

import asyncio

import pytest

from bot.handlers.email.imap import ImapError, open_mailbox
from bot.handlers.email.settings import EmailSettings
from tests.fakes.stream_server import StreamServer


class RefusingImap(StreamServer):
    """An IMAP server that greets, then refuses every login; counts connections and closes."""

    def __init__(self) -> None:
        super().__init__()
        self.opened = 0
        self.closed = 0

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.opened += 1
        writer.write(b"* OK [CAPABILITY IMAP4rev1] ready\r\n")
        while line := await reader.readline():
            tag, _, command = line.decode().partition(" ")
            if command.upper().startswith("CAPABILITY"):
                writer.write(f"* CAPABILITY IMAP4rev1\r\n{tag} OK done\r\n".encode())
            else:
                writer.write(f"{tag} NO [AUTHENTICATIONFAILED] wrong password\r\n".encode())
        self.closed += 1  # the client closed its end
        writer.close()


async def test_a_refused_login_closes_its_connection() -> None:
    server = RefusingImap()
    await server.start()
    settings = EmailSettings(
        address="sales@alpha.example", imap_host="127.0.0.1", imap_port=server.port, imap_security="none"
    )
    try:
        for _ in range(3):
            with pytest.raises(ImapError, match="IMAP login failed"):
                await open_mailbox(settings, None)
        async with asyncio.timeout(5):
            while server.closed < server.opened:
                await asyncio.sleep(0.02)
        assert server.opened == server.closed == 3
    finally:
        await server.stop()
