"""An IMAP server may send a mail larger than it announced (RFC822.SIZE): the reader takes at most
``email.max_message_bytes`` whatever the server says. It asks for that and one byte more (a partial
fetch) and skips a mail that fills it, as it skips one announced too large; a server that sends
more anyway loses the connection there (its mail skipped, the reader back on a new connection), so
the rest of the mail is never read. Mail within the bound is read and recorded as before."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence

import pytest

from bot.handlers.email.imap import MailboxReader
from bot.handlers.email.settings import EmailSettings
from tests.fakes.stream_server import StreamServer

MOST = 4096
SMALL = b"From: jane@client.example\r\nTo: help@alpha.example\r\nSubject: hi\r\n\r\nhello\r\n"
LIE = 100  # what the server announces of the large mail
_FETCH = re.compile(r"UID FETCH (\d+) \(BODY\.PEEK\[\](?:<0\.(\d+)>)?\)", re.IGNORECASE)


class LyingImap(StreamServer):
    """An IMAP server of two unseen mails: UID 1 announced at 100 bytes but ``large`` bytes long,
    UID 2 a small one. ``honours_partial``: whether it keeps to a partial fetch's bound (a server
    that does not sends the whole mail, 64 KiB at a time). Records what it sent and what was marked
    seen."""

    def __init__(self, large: int, honours_partial: bool) -> None:
        super().__init__()
        self.large, self.honours_partial = large, honours_partial
        self.sent_of_large = 0  # bytes of the large mail written before the client hung up
        self.seen: list[str] = []
        self.connections = 0

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        writer.write(b"* OK [CAPABILITY IMAP4rev1] ready\r\n")
        try:
            while line := await reader.readline():
                tag, _, command = line.decode().strip().partition(" ")
                await self._answer(writer, tag, command)
        except (ConnectionError, OSError):
            pass  # the client hung up
        finally:
            writer.close()

    async def _answer(self, writer: asyncio.StreamWriter, tag: str, command: str) -> None:
        verb = command.upper()
        if verb.startswith("CAPABILITY"):
            writer.write(f"* CAPABILITY IMAP4rev1\r\n{tag} OK done\r\n".encode())
        elif verb.startswith("SELECT"):
            writer.write(f"* 2 EXISTS\r\n* FLAGS (\\Seen)\r\n{tag} OK [READ-WRITE] done\r\n".encode())
        elif verb.startswith("UID SEARCH"):
            writer.write(f"* SEARCH 1 2\r\n{tag} OK done\r\n".encode())
        elif "RFC822.SIZE" in verb:
            sizes = f"* 1 FETCH (UID 1 RFC822.SIZE {LIE})\r\n* 2 FETCH (UID 2 RFC822.SIZE {len(SMALL)})\r\n"
            writer.write(f"{sizes}{tag} OK done\r\n".encode())
        elif match := _FETCH.search(command):
            await self._mail(writer, tag, int(match.group(1)), int(match.group(2) or self.large))
        elif verb.startswith("UID STORE"):
            self.seen.append(command.split()[2])
            writer.write(f"{tag} OK done\r\n".encode())
        elif verb.startswith("LOGOUT"):
            writer.write(f"* BYE\r\n{tag} OK done\r\n".encode())
        else:  # LOGIN and anything else
            writer.write(f"{tag} OK done\r\n".encode())
        await writer.drain()

    async def _mail(self, writer: asyncio.StreamWriter, tag: str, uid: int, asked: int) -> None:
        if uid == 2:
            writer.write(f"* 2 FETCH (UID 2 BODY[]<0> {{{len(SMALL)}}}\r\n".encode() + SMALL + b")\r\n")
        else:
            size = min(self.large, asked) if self.honours_partial else self.large
            writer.write(f"* 1 FETCH (UID 1 BODY[]<0> {{{size}}}\r\n".encode())
            head = SMALL[:-2]  # a mail whose body goes on and on
            chunk = b"x" * 65536
            writer.write(head)
            self.sent_of_large = len(head)
            while self.sent_of_large < size:
                part = chunk[: size - self.sent_of_large]
                writer.write(part)
                await writer.drain()
                self.sent_of_large += len(part)
            writer.write(b")\r\n")
        writer.write(f"{tag} OK done\r\n".encode())


@pytest.mark.parametrize("honours_partial", [True, False], ids=["partial-fetch-kept", "partial-fetch-ignored"])
async def test_a_mail_larger_than_announced_is_read_no_further_than_the_bound(honours_partial: bool) -> None:
    large = 32 * 1024 * 1024
    server = LyingImap(large, honours_partial)
    await server.start()
    recorded: list[int] = []

    async def ingest(raw: bytes, recipients: Sequence[str]) -> None:
        recorded.append(len(raw))

    settings = EmailSettings(
        address="help@alpha.example",
        imap_host="127.0.0.1",
        imap_port=server.port,
        imap_security="none",
        imap_idle=False,
        poll_interval=0.05,
        max_message_bytes=MOST,
    )
    reader = MailboxReader(settings, ingest)
    reading = asyncio.create_task(reader.run())
    try:
        async with asyncio.timeout(60):
            while "2" not in server.seen:  # the small mail, recorded and marked seen
                await asyncio.sleep(0.02)
    finally:
        reading.cancel()
        await asyncio.gather(reading, return_exceptions=True)
        await server.stop()
    assert recorded and set(recorded) == {len(SMALL)}  # the large mail was never handed on
    assert "1" not in server.seen  # left unseen for a human, as a mail announced too large is
    assert server.sent_of_large < large  # the client stopped reading: the server could not send it all
    # a server that ignored the bound was hung up on, and the reader came back for the rest
    assert server.connections == (1 if honours_partial else 2)
