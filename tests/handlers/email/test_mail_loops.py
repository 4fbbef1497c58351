"""Real-world mail on the e-mail channel against real servers (aiosmtpd in and out): bounces and
auto-replies that must never start a loop, internationalised addresses, what real relays send to the
SMTP listener, and telling apart mails that share a Message-ID."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
from pathlib import Path
from typing import Any

import aiosmtplib
import pytest
from aiohttp.test_utils import TestClient

from bot.handlers.email.parse import parse_mail
from bot.handlers.kit.protocol import PermanentSendError
from bot.keys import STORE
from conversations.embedded import EmbeddedMongo
from conversations.models import utcnow
from conversations.traffic import Identity, Outbound
from tests.handlers.conftest import OUR_ADDRESS, Mailbox, email_settings
from tests.handlers.email.test_email import _dispatched, _unseen_is, adapter_of, mail, sent_count, smtp_app  # noqa: F401
from tests.handlers.sms.test_sms import messages
from tests.mailservers import Dovecot, SmtpSink
from tests.router.test_inbound import wait_for

FIXTURES = Path(__file__).resolve().parent / "fixtures"


async def smtp_data(port: int, sender: str, data: bytes) -> bytes:
    """One mail over a plain socket, as written (bare line feeds kept); the server's last answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        await reader.readline()
        for command in (b"HELO relay.example", f"MAIL FROM:<{sender}>".encode(), f"RCPT TO:<{OUR_ADDRESS}>".encode()):
            writer.write(command + b"\r\n")
            assert (await reader.readline()).startswith(b"250")
        writer.write(b"DATA\r\n")
        assert (await reader.readline()).startswith(b"354")
        writer.write(data + b"\r\n.\r\n")
        await writer.drain()
        return await asyncio.wait_for(reader.readline(), 30)
    finally:
        writer.close()


async def test_bounces_naming_no_sender_are_recorded_in_the_thread_they_return_and_fail_the_reply(
    smtp_app: TestClient, smtp_sink: SmtpSink
) -> None:
    adapter, store = adapter_of(smtp_app), smtp_app.server.app[STORE]
    port = adapter.listener.port  # type: ignore[union-attr]
    first = await store.messages.get_message(await adapter.ingest(mail("Anna <anna@client.example>", "Hi", "?")[0]))
    assert first is not None
    await wait_for(lambda: sent_count(smtp_sink, 1), timeout=10)  # the notice, to be bounced
    [(_, notice, _)] = smtp_sink.received
    ours = notice["Message-ID"][1:-1]
    for name, placeholder in [
        ("bounce_null_from", "omnirouter.msg_cccccccccccccccccccccccc@shop.example"),  # From: MAILER-DAEMON <>
        ("bounce_name_only", "omnirouter.msg_dddddddddddddddddddddddd@shop.example"),  # a display name only
        ("bounce_malformed_from", "omnirouter.msg_eeeeeeeeeeeeeeeeeeeeeeee@shop.example"),
    ]:
        raw = (FIXTURES / f"{name}.eml").read_bytes().replace(placeholder.encode(), ours.encode())
        response = await smtp_data(port, "", raw)  # the null reverse-path of a bounce
        assert response.startswith(b"250 2.0.0 recorded"), name  # was 554 "no From address"
        [bounce] = [m for m in await messages(smtp_app, direction="in") if name.split("_")[-1] in m["external_id"]]
        assert bounce["thread_id"] == first.thread_id, name
        await wait_for(lambda message_id=bounce["_id"]: _dispatched(store, message_id))
    [reply] = await messages(smtp_app, direction="out")
    assert reply["delivery_status"] == "failed"
    assert await store.messages.delivery_error(reply["_id"]) == "bounced: 5.1.1; smtp; 550 5.1.1 User unknown"
    await asyncio.sleep(0.3)
    assert len(smtp_sink.received) == 1  # nothing answered a bounce


async def test_a_bounce_of_a_reply_in_a_resolved_conversation_is_recorded_there_and_opens_nothing(
    smtp_app: TestClient, smtp_sink: SmtpSink
) -> None:
    adapter, store = adapter_of(smtp_app), smtp_app.server.app[STORE]
    first = await store.messages.get_message(await adapter.ingest(mail("Ivo <ivo@client.example>", "Hi", "?")[0]))
    assert first is not None
    await wait_for(lambda: sent_count(smtp_sink, 1), timeout=10)  # the notice, to be bounced
    [(_, notice, _)] = smtp_sink.received
    assert await store.queue.resolve(first.thread_id, utcnow(), None) is not None
    placeholder = b"omnirouter.msg_cccccccccccccccccccccccc@shop.example"
    raw = (FIXTURES / "bounce_null_from.eml").read_bytes().replace(placeholder, notice["Message-ID"][1:-1].encode())
    assert (await smtp_data(adapter.listener.port, "", raw)).startswith(b"250")  # type: ignore[union-attr]
    _, bounce = await messages(smtp_app, direction="in")
    assert bounce["thread_id"] == first.thread_id  # not a new conversation with the mailer daemon
    assert await store.threads.contact_threads("default", bounce["contact_id"]) == []
    await wait_for(lambda: _dispatched(store, bounce["_id"]))
    thread = await store.threads.get_thread(first.thread_id)
    assert thread is not None and thread.status == "resolved"  # neither reopened nor queued
    assert thread.awaiting_since is None  # and no agent is counted late for a mailer daemon
    info = await store.mail.email_thread_info(first.thread_id)
    assert info is not None and "null-from-bounce-1@mx.relay.example" not in info.references  # never replied to
    [reply] = await messages(smtp_app, direction="out")
    assert reply["delivery_status"] == "failed"
    assert await store.messages.delivery_error(reply["_id"]) == "bounced: 5.1.1; smtp; 550 5.1.1 User unknown"
    await asyncio.sleep(0.3)
    assert len(smtp_sink.received) == 1  # nothing answered the bounce


async def test_vacation_replies_bounces_and_no_reply_senders_get_no_bot_mail(
    smtp_app: TestClient, smtp_sink: SmtpSink
) -> None:
    adapter, store = adapter_of(smtp_app), smtp_app.server.app[STORE]
    for name, reason in [
        ("icloud_vacation", "auto_submitted"),
        ("kddi_bounce", "bounce"),
        ("noreply_sender", "no_reply_sender"),
    ]:
        message = await store.messages.get_message(await adapter.ingest((FIXTURES / f"{name}.eml").read_bytes()))
        assert message is not None
        await wait_for(lambda message_id=message.id: _dispatched(store, message_id))
        thread = await store.threads.get_thread(message.thread_id)
        assert thread is not None and thread.status == "queued" and thread.escalation_reason == reason, name
    await asyncio.sleep(0.3)
    assert smtp_sink.received == []

    def outbound(to: str, kind: str) -> Outbound:
        return Outbound(
            "default", "email", "thr_x", f"msg_{kind}", Identity("email", to), "hi", meta={"sender_kind": kind}
        )

    for kind in ("bot", "system"):  # never an automatic mail to an address that reads no mail
        for address in ("no-reply@parcels.example", "donotreply@shop2.example", "mailer-daemon@mx.example"):
            with pytest.raises(PermanentSendError, match="reads no mail"):
                await adapter.send(outbound(address, kind))
    with pytest.raises(PermanentSendError, match="reads no mail"):  # nor a person's, to a daemon
        await adapter.send(outbound("mailer-daemon@bounce.invalid", "agent"))
    await adapter.send(outbound("no-reply@parcels.example", "agent"))  # an agent decided: sent
    assert [r for r, _, _ in smtp_sink.received] == [["no-reply@parcels.example"]]


async def test_internationalised_addresses_are_taken_and_answered_over_smtputf8(
    smtp_app: TestClient, smtp_sink: SmtpSink
) -> None:
    port = adapter_of(smtp_app).listener.port  # type: ignore[union-attr]
    raw = (FIXTURES / "utf8_headers_rfc6532.eml").read_bytes()
    _, response = await aiosmtplib.send(
        raw,
        sender="jöhn@exämple.com",
        recipients=[OUR_ADDRESS],
        hostname="127.0.0.1",
        port=port,
        mail_options=["SMTPUTF8"],
    )
    assert response.startswith("2.0.0 recorded")
    [recorded] = await messages(smtp_app, direction="in")
    assert recorded["sender"] == {"kind": "customer", "address": "jöhn@exämple.com", "name": "Jöhn Dœ"}
    await wait_for(lambda: sent_count(smtp_sink, 1), timeout=10)
    [(recipients, _, raw_notice)] = smtp_sink.received
    notice = parse_mail(raw_notice)  # SMTPUTF8: UTF-8 headers, as RFC 6532 writes them
    assert recipients == ["jöhn@exämple.com"] and "To: jöhn@exämple.com\r\n".encode() in raw_notice
    assert notice.subject.startswith("Re: Заказ für Jöhn [#") and notice.in_reply_to == "utf8-from-1@exämple.com"

    # a server without SMTPUTF8 can never take it: a permanent failure, not retries for days
    plain = SmtpSink(smtputf8=False)
    await plain.start()
    adapter = adapter_of(smtp_app)
    try:
        own = adapter.mailboxes.install
        assert own is not None
        adapter.mailboxes.install = dataclasses.replace(
            own, settings=dataclasses.replace(own.settings, smtp_port=plain.port)
        )
        to = Identity("email", "jöhn@exämple.com")
        with pytest.raises(PermanentSendError, match="SMTPUTF8"):
            await adapter.send(Outbound("default", "email", "thr_x", "msg_u", to, "hi", meta={"sender_kind": "agent"}))
    finally:
        await plain.stop()


async def test_the_listener_takes_bare_line_feeds_and_long_lines(smtp_app: TestClient) -> None:
    port = adapter_of(smtp_app).listener.port  # type: ignore[union-attr]
    body = "\n".join(f"line {n}: where is my order?" for n in range(100))
    bare_lf = mail("lf@client.example", "Bare LF", body)[0].replace(b"\r\n", b"\n")
    assert len(bare_lf) > 1000 and b"\r" not in bare_lf
    assert (await smtp_data(port, "lf@client.example", bare_lf)).startswith(b"250 2.0.0 recorded")  # was 500
    long_line = (
        b"From: long@client.example\r\nTo: support@shop.example\r\nSubject: Long line\r\n"
        b"Message-ID: <long-1@client.example>\r\nContent-Type: text/plain; charset=utf-8\r\n"
        b"Content-Transfer-Encoding: 8bit\r\n\r\n" + b"x" * 5000 + b"\r\n"
    )  # one line of 5,000 characters, CRLF everywhere
    assert (await smtp_data(port, "long@client.example", long_line)).startswith(b"250 2.0.0 recorded")
    recorded = {m["sender"]["address"]: m for m in await messages(smtp_app, direction="in")}
    assert recorded["lf@client.example"]["text"] == body
    assert recorded["long@client.example"]["text"] == "x" * 5000


async def test_dot_stuffed_lines_in_bare_lf_mail_are_unstuffed_exactly_once(smtp_app: TestClient) -> None:
    port = adapter_of(smtp_app).listener.port  # type: ignore[union-attr]
    body = "first\n.leading dot\n.\n..two dots\nafter the dot line\n.last"
    # as a relay writes it (RFC 5321 4.5.2): every line starting with "." gets one more
    stuffed = b"\n".join(b"." + line if line.startswith(b".") else line for line in body.encode().split(b"\n"))
    for line_end, sender in [(b"\n", "lf-dots@client.example"), (b"\r\n", "crlf-dots@client.example")]:
        head = mail(sender, "Dots", "")[0].replace(b"\r\n", b"\n").partition(b"\n\n")[0]
        raw = (head + b"\n\n" + stuffed).replace(b"\n", line_end)
        assert (await smtp_data(port, sender, raw)).startswith(b"250 2.0.0 recorded"), sender
    recorded = {m["sender"]["address"]: m["text"] for m in await messages(smtp_app, direction="in")}
    assert recorded == {"lf-dots@client.example": body, "crlf-dots@client.example": body}


async def test_mails_sharing_a_message_id_are_all_kept_and_old_records_still_deduplicate(smtp_app: TestClient) -> None:
    adapter = adapter_of(smtp_app)
    raw_anna, shared = mail("anna@client.example", "Order", "Where is my order?", message_id="same@broken.example")
    raw_bob, _ = mail("bob@other.example", "Invoice", "Send the invoice", message_id=shared)
    anna, bob = await adapter.ingest(raw_anna), await adapter.ingest(raw_bob)
    assert anna != bob and await adapter.ingest(raw_anna) == anna  # a redelivery is still one message
    stored = await messages(smtp_app, direction="in")
    assert len(stored) == 2 and stored[0]["thread_id"] != stored[1]["thread_id"]  # bob is not in anna's thread

    # mails recorded by the previous version, under the bare Message-ID or a hash of all the
    # bytes of a mail without one, delivered again
    with_id, old_id = mail("carol@client.example", "Old", "Recorded before the upgrade")
    without_id = (FIXTURES / "no_message_id.eml").read_bytes()
    old_keys = [old_id, f"{hashlib.sha256(without_id).hexdigest()[:32]}@no-message-id.invalid"]
    for raw, old_key in zip([with_id, without_id], old_keys, strict=True):
        old = adapter.inbound(parse_mail(raw))
        recorded, _ = await adapter.sink.receive(dataclasses.replace(old, external_id=old_key))
        assert await adapter.ingest(raw) == recorded.message.id
    assert len(await messages(smtp_app, direction="in")) == 4


async def test_a_mail_delivered_again_after_its_conversation_was_resolved_opens_nothing(smtp_app: TestClient) -> None:
    adapter, store = adapter_of(smtp_app), smtp_app.server.app[STORE]
    raw, _ = mail("dora@client.example", "Resolved", "Thanks, all good")
    message = await store.messages.get_message(await adapter.ingest(raw))
    assert message is not None
    await wait_for(lambda: _dispatched(store, message.id))
    assert await store.queue.resolve(message.thread_id, utcnow(), None) is not None
    assert await adapter.ingest(raw) == message.id  # the relay delivered it twice
    [thread] = await store.threads.contact_threads("default", message.contact_id)
    assert thread.id == message.thread_id and thread.status == "resolved"


async def test_a_carriers_bounce_read_over_imap_fails_the_reply_and_is_not_answered(
    embedded: EmbeddedMongo,
    db_name: str,
    dovecot: Dovecot,
    mailbox_user: str,
    mailbox: Mailbox,
    smtp_sink: SmtpSink,
    start_client: Any,
) -> None:
    client = await start_client(
        email_settings(embedded.uri, db_name, dovecot=dovecot, user=mailbox_user, sink=smtp_sink)
    )
    await mailbox.deliver(mail("Kenji <kenji@ezweb.ne.jp>", "注文", "注文はどこですか？")[0])
    await wait_for(lambda: sent_count(smtp_sink, 1), timeout=15)
    [(_, notice, _)] = smtp_sink.received
    placeholder = b"omnirouter.msg_bbbbbbbbbbbbbbbbbbbbbbbb@shop.example"
    bounce = (FIXTURES / "kddi_bounce.eml").read_bytes().replace(placeholder, notice["Message-ID"][1:-1].encode())
    await mailbox.deliver(bounce)
    await wait_for(lambda: _unseen_is(mailbox, 0), timeout=15)
    [reply] = await messages(client, direction="out")
    await wait_for(lambda: _delivery_is(client, reply["_id"], "failed"), timeout=15)
    customer, returned = await messages(client, direction="in")
    assert returned["thread_id"] == customer["thread_id"] and returned["meta"]["no_auto_reply"] == "bounce"
    await asyncio.sleep(0.5)
    assert len(smtp_sink.received) == 1  # the bounce got no answer, nor did its no-reply sender


async def _delivery_is(client: TestClient, message_id: str, status: str) -> bool:
    [found] = [m for m in await messages(client, direction="out") if m["_id"] == message_id]
    return bool(found.get("delivery_status") == status)
