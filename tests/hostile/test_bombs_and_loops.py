"""E-mail bombs (huge headers, thousands of parts, deep nesting, megabytes of text) cost bounded
work and store nothing unusable; reply loops between our router and another bot stop at once."""

from __future__ import annotations

import time
from typing import Any

import aiosmtplib
import pytest
from aiohttp.test_utils import TestClient

from bot.handlers.email.compose import compose_reply
from bot.handlers.email.limits import MAX_PARTS
from bot.handlers.email.parse import FULL_TEXT_KEPT, MAX_ATTACHMENTS, parse_mail
from bot.handlers.kit.protocol import MalformedPayload
from bot.keys import ADAPTERS, STORE
from conversations.embedded import free_port
from tests.conftest import raw_database_of
from tests.faults.harness import message
from tests.hostile.conftest import every_channel, post, settled, stored
from tests.router.test_inbound import wait_for

HEAD = b"From: Ann <ann@example.net>\r\nTo: support@shop.example\r\nSubject: hi\r\nMessage-ID: <bomb@x>\r\n"


def multipart(parts: int) -> bytes:
    body = b"".join(
        b"--B\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; "
        b"filename=f%d.bin\r\n\r\nAAAA\r\n" % n
        for n in range(parts)
    )
    return (
        HEAD + b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=B\r\n\r\n"
        b"--B\r\nContent-Type: text/plain\r\n\r\nhello\r\n" + body + b"--B--\r\n"
    )


def nested(depth: int) -> bytes:
    opening = b"".join(
        b"--b%d\r\nContent-Type: multipart/mixed; boundary=b%d\r\n\r\n" % (n - 1, n) for n in range(1, depth)
    )
    closing = b"".join(b"--b%d--\r\n" % n for n in reversed(range(depth)))
    return (
        HEAD
        + b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b0\r\n\r\n"
        + opening
        + b"--b%d\r\nContent-Type: text/plain\r\n\r\ndeep\r\n" % (depth - 1)
        + closing
    )


BOMBS = {
    "100k-recipients": HEAD.replace(
        b"To: support@shop.example", b"To: " + b", ".join(b"u%d@example.com" % n for n in range(100_000))
    )
    + b"\r\nbody",
    "200k-references": HEAD + b"References: " + b" ".join(b"<r%d@x>" % n for n in range(200_000)) + b"\r\n\r\nbody",
    "10MB-text": HEAD + b"\r\n" + (b"hello world " * 80 + b"\r\n") * 10_000,
    "5MB-subject": HEAD.replace(b"Subject: hi", b"Subject: " + b"a" * 5_000_000) + b"\r\nbody",
    "990-deep": nested(990),
}


@pytest.mark.parametrize("name", sorted(BOMBS))
def test_a_mail_bomb_costs_bounded_work(name: str) -> None:
    started = time.process_time()
    try:
        mail = parse_mail(BOMBS[name])
    except MalformedPayload:
        mail = None
    assert time.process_time() - started < 3  # it took 47 s (recipients) and 14 s (text) before
    if mail is not None:
        assert len(mail.text) <= FULL_TEXT_KEPT and len(mail.recipients) < 5000 and len(mail.subject) < 40_000


def test_thousands_of_parts_are_refused_and_hundreds_listed_in_part() -> None:
    with pytest.raises(MalformedPayload, match="MIME parts"):
        parse_mail(multipart(MAX_PARTS + 5))
    mail = parse_mail(multipart(MAX_ATTACHMENTS + 50))
    assert len(mail.attachments) == MAX_ATTACHMENTS and mail.attachments_dropped


@pytest.fixture
async def smtp_router(embedded: Any, db_name: str, providers: Any, start_client: Any) -> TestClient:
    bot_api, graph_api, twilio = providers
    settings = every_channel(
        embedded.uri,
        db_name,
        bot_api.url,
        graph_api.url,
        twilio.url,
        email={"listen_port": free_port(), "max_message_bytes": 2_000_000},
    )
    client: TestClient = await start_client(settings)
    return client


async def test_bombs_over_smtp_are_refused_with_a_5xx_and_store_nothing(smtp_router: TestClient) -> None:
    port = smtp_router.server.app[ADAPTERS]["email"].listener.port  # type: ignore[attr-defined]
    before = await stored(smtp_router)
    for raw, code in ((multipart(MAX_PARTS + 5), 554), (nested(1200), 554), (HEAD + b"\r\n" + b"x" * 2_100_000, 552)):
        with pytest.raises(aiosmtplib.SMTPResponseException) as refused:
            await aiosmtplib.send(
                raw,
                sender="ann@example.net",
                recipients=["support@shop.example"],
                hostname="127.0.0.1",
                port=port,
                timeout=30,
            )
        assert refused.value.code == code, refused.value
    assert await stored(smtp_router) == before
    folded = HEAD.replace(
        b"To: support@shop.example", b"To: " + b",\r\n ".join(b"u%d@example.com" % n for n in range(50_000))
    )
    errors, _ = await aiosmtplib.send(
        folded + b"\r\nstill fine",
        sender="ann@example.net",
        recipients=["support@shop.example"],
        hostname="127.0.0.1",
        port=port,
        timeout=30,
    )
    assert errors == {}
    assert await raw_database_of(smtp_router.server.app[STORE]).messages.count_documents({"direction": "in"}) == 1


@pytest.mark.parametrize("channel", ["sms", "whatsapp"])
async def test_an_auto_responder_on_the_other_side_gets_one_notice_not_a_loop(
    everything: TestClient, providers: Any, channel: str
) -> None:
    """Another bot answers everything we send it; we answer its first message and then wait for a
    human, so after twenty of its auto-replies it has still received one message from us."""
    _, graph_api, twilio = providers

    def ours() -> list[Any]:
        return twilio.sent if channel == "sms" else graph_api.sent_ok()

    async def answered() -> bool:
        return len(ours()) >= 1

    await post(everything, message(channel, 1, 77))
    for n in range(2, 22):
        await wait_for(answered)
        await post(everything, message(channel, n, 77))  # "Auto-reply: I am away until Monday"
    await settled(everything)
    assert len(ours()) == 1
    db = raw_database_of(everything.server.app[STORE])
    assert await db.messages.count_documents({"direction": "in"}) == 21
    assert await db.messages.count_documents({"send": {"$exists": True}}) == 1


def test_two_routers_mailing_each_other_stop_after_one_mail() -> None:
    """Our automatic mail carries ``Auto-Submitted: auto-replied``: a second router (or any
    RFC 3834 responder) records it and answers nothing; and we treat theirs the same way."""
    ours = compose_reply(
        text="Thanks, a person will reply.",
        to="support@other.example",
        from_address="support@shop.example",
        from_name="Shop",
        subject="Re: hi",
        message_id="n1@shop.example",
        in_reply_to="c1@other.example",
        references=["c1@other.example"],
        reply_to=None,
        automatic=True,
    )
    assert parse_mail(ours.as_bytes()).no_auto_reply == "auto_submitted"
