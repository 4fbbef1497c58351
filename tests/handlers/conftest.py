"""Fixtures for the channel tests: real mail servers for e-mail (one Dovecot for the session, an
SMTP sink per test) and local fakes of the Bot API and the Graph API for the messengers."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from aioimaplib import IMAP4

from bot.settings import Settings
from conversations.embedded import EmbeddedMongo
from tests.conftest import make_settings, operator_client
from tests.fakes.graph_api import FakeGraphAPI
from tests.fakes.telegram_api import FakeBotAPI
from tests.handlers.channels import channel_settings
from tests.mailservers import IMAP_PASSWORD, Dovecot, SmtpSink

OUR_ADDRESS = "support@shop.example"


@pytest.fixture(scope="session")
async def dovecot(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Dovecot]:
    server = Dovecot(tmp_path_factory.mktemp("dovecot"))
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def smtp_sink() -> AsyncIterator[SmtpSink]:
    sink = SmtpSink()
    await sink.start()
    yield sink
    await sink.stop()


@pytest.fixture
def mailbox_user() -> str:
    """A mailbox of this test's own on the session's Dovecot."""
    return f"support-{uuid.uuid4().hex[:10]}"


def email_settings(uri: str, db: str, *, dovecot: Dovecot | None, user: str, sink: SmtpSink, **email: Any) -> Settings:
    values: dict[str, Any] = {
        "address": OUR_ADDRESS,
        "display_name": "Shop Support",
        "smtp_host": "127.0.0.1",
        "smtp_port": sink.port,
        "smtp_security": "none",
        "poll_interval": 0.2,
    }
    if dovecot is not None:
        values.update(
            imap_host="127.0.0.1",
            imap_port=dovecot.port,
            imap_security="none",
            imap_user=user,
            imap_password=IMAP_PASSWORD,
        )
    values.update(email)
    return make_settings(uri, db, email=values)


class Mailbox:
    """The test's view of a Dovecot mailbox, over a real IMAP connection."""

    def __init__(self, dovecot: Dovecot, user: str) -> None:
        self._dovecot = dovecot
        self._user = user

    async def _client(self) -> IMAP4:
        client = IMAP4("127.0.0.1", self._dovecot.port, timeout=10)
        await client.wait_hello_from_server()
        assert (await client.login(self._user, IMAP_PASSWORD)).result == "OK"
        return client

    async def deliver(self, raw: bytes) -> None:
        client = await self._client()
        try:
            assert (await client.append(raw, mailbox="INBOX")).result == "OK"
        finally:
            await client.logout()

    async def drop(self, raws: list[bytes]) -> None:
        """Deliver many mails at once the way a local delivery agent does: each written to the
        Maildir's ``tmp`` and renamed into ``new`` (the Maildir must exist: ``deliver`` one first)."""
        maildir = self._dovecot.mail / self._user / "Maildir"
        for n, raw in enumerate(raws):
            name = f"{1_700_000_000 + n}.M{n}P{os.getpid()}.omnirouter-test"
            (maildir / "tmp" / name).write_bytes(raw)
            os.rename(maildir / "tmp" / name, maildir / "new" / name)

    async def unseen(self) -> int:
        client = await self._client()
        try:
            await client.select("INBOX")
            found = await client.search("UNSEEN")
            return len(found.lines[0].split())
        finally:
            await client.logout()


@pytest.fixture
def mailbox(dovecot: Dovecot, mailbox_user: str) -> Mailbox:
    return Mailbox(dovecot, mailbox_user)


@pytest.fixture
async def router(
    embedded: EmbeddedMongo, db_name: str, bot_api: FakeBotAPI, graph_api: FakeGraphAPI
) -> AsyncIterator[TestClient]:
    """The router with Telegram and WhatsApp configured against the fakes."""
    settings = channel_settings(embedded.uri, db_name, telegram_api=bot_api.url, graph_api=graph_api.url)
    async with operator_client(settings) as client:
        yield client
