"""The e-mail channel against real servers: Dovecot over IMAP in, aiosmtpd in and out."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from typing import Any

import aiosmtplib
import pytest
from aiohttp.test_utils import TestClient

from bot.handlers.email.adapter import EmailAdapter
from bot.handlers.email.imap import MailboxReader
from bot.handlers.email.settings import EmailSettings
from bot.handlers.kit.protocol import PermanentSendError, RetryableSendError
from bot.keys import ADAPTERS, STORE
from bot.services.agents import add_agent
from bot.services.attachments import attachment_file
from bot.services.replies import AgentFile
from bot.web.keys import SERVICES
from conversations.agent_models import Role
from conversations.embedded import EmbeddedMongo, free_port
from conversations.traffic import Identity, Outbound
from tests.handlers.conftest import OUR_ADDRESS, Mailbox, email_settings
from tests.handlers.sms.test_sms import messages
from tests.mailservers import Dovecot, SmtpSink
from tests.router.test_inbound import wait_for

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def mail(
    sender: str,
    subject: str,
    body: str,
    *,
    message_id: str | None = None,
    in_reply_to: str | None = None,
    references: Sequence[str] = (),
    to: str = OUR_ADDRESS,
    **headers: str,
) -> tuple[bytes, str]:
    """A customer's mail as bytes, and its Message-ID (without brackets)."""
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, to, subject
    message_id = message_id or make_msgid(domain="client.example")[1:-1]
    msg["Message-ID"] = f"<{message_id}>"
    if in_reply_to:
        msg["In-Reply-To"] = f"<{in_reply_to}>"
    if references:
        msg["References"] = " ".join(f"<{r}>" for r in references)
    for name, value in headers.items():
        msg[name.replace("_", "-")] = value
    msg.set_content(body)
    return bytes(msg), message_id


def adapter_of(client: TestClient) -> EmailAdapter:
    adapter = client.server.app[ADAPTERS]["email"]
    assert isinstance(adapter, EmailAdapter)
    return adapter


@pytest.fixture
async def smtp_app(embedded: EmbeddedMongo, db_name: str, smtp_sink: SmtpSink, start_client: Any) -> TestClient:
    """The router taking mail on its SMTP listener (no IMAP), replying to the sink."""
    settings = email_settings(embedded.uri, db_name, dovecot=None, user="", sink=smtp_sink, listen_port=free_port())
    client: TestClient = await start_client(settings)
    return client


async def sent_count(sink: SmtpSink, count: int) -> bool:
    return len(sink.received) >= count


async def test_imap_mail_is_recorded_marked_seen_and_answered_in_its_thread(
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
    first = (FIXTURES / "multipart_attachments.eml").read_bytes()
    await mailbox.deliver(first)
    await wait_for(lambda: sent_count(smtp_sink, 1), timeout=15)
    [recorded] = await messages(client, direction="in")
    assert recorded["text"] == "Добрый день! Счёт и фото повреждённой коробки во вложении."
    assert [a["name"] for a in recorded["attachments"]] == ["invoice-1042.pdf", "box.png"]
    assert await mailbox.unseen() == 0  # seen, now that it is recorded
    assert await client.server.app[STORE].mail.email_source(recorded["_id"]) == first  # the original, kept

    [(recipients, reply, _)] = smtp_sink.received
    original = "5f1e0c2a-7b7e-4a53-9e0e-1c2f3d4e5f60@mail.example"
    assert recipients == ["ivan@mail.example"] and reply["To"] == "ivan@mail.example"
    assert reply["In-Reply-To"] == f"<{original}>" and reply["References"] == f"<{original}>"
    token = str(reply["Subject"]).rsplit("[#", 1)[1].rstrip("]")
    assert str(reply["Subject"]) == f"Re: Счёт и фото [#{token}]"
    assert reply["Reply-To"].addresses[0].addr_spec == f"support+{token}@shop.example"
    assert reply["Auto-Submitted"] == "auto-replied"  # a system notice: robots must not answer it
    assert reply["From"].addresses[0].addr_spec == OUR_ADDRESS
    assert reply.get_content_type() == "multipart/alternative"
    assert reply.get_body(("plain",)).get_content().startswith("Thanks for your message!")
    assert "<p>Thanks for your message!" in reply.get_body(("html",)).get_content()
    our_id = reply["Message-ID"][1:-1]

    # the customer answers our reply, quoting it: same thread, only the new text shown
    answer, _ = mail(
        "Иван Петров <ivan@mail.example>",
        f"Re: {reply['Subject']}",
        "Спасибо, жду ответа.\n\nOn Thu, Support wrote:\n> Thanks for your message!\n",
        in_reply_to=our_id,
        references=[original, our_id],
    )
    await mailbox.deliver(answer)
    await wait_for(lambda: _count(client, 2), timeout=15)
    inbound = await messages(client, direction="in")
    assert inbound[1]["thread_id"] == inbound[0]["thread_id"]
    assert inbound[1]["text"] == "Спасибо, жду ответа."
    assert "> Thanks for your message!" in inbound[1]["meta"]["email"]["full_text"]
    await asyncio.sleep(0.3)
    assert len(smtp_sink.received) == 1  # already waiting for an agent: no second notice


async def _count(client: TestClient, n: int) -> bool:
    return len(await messages(client, direction="in")) >= n


async def test_idle_picks_up_new_mail_without_waiting_for_the_next_poll(
    embedded: EmbeddedMongo,
    db_name: str,
    dovecot: Dovecot,
    mailbox_user: str,
    mailbox: Mailbox,
    smtp_sink: SmtpSink,
    start_client: Any,
) -> None:
    client = await start_client(
        email_settings(embedded.uri, db_name, dovecot=dovecot, user=mailbox_user, sink=smtp_sink, poll_interval=60)
    )
    reader = adapter_of(client).reader
    assert reader is not None
    await wait_for(lambda: _polled(reader), timeout=10)  # connected, first poll done, now idling
    await asyncio.sleep(0.3)
    started = asyncio.get_running_loop().time()
    await mailbox.deliver(mail("anna@client.example", "Idle test", "Are you there?")[0])
    await wait_for(lambda: _count(client, 1), timeout=10)
    assert asyncio.get_running_loop().time() - started < 10  # far sooner than the 60 s poll


async def _polled(reader: Any) -> bool:
    return bool(reader.polls >= 1)


async def test_a_backlog_of_thousands_of_unseen_mails_is_read(
    embedded: EmbeddedMongo,
    db_name: str,
    dovecot: Dovecot,
    mailbox_user: str,
    mailbox: Mailbox,
    smtp_sink: SmtpSink,
    start_client: Any,
) -> None:
    """A mailbox connected with a backlog (an old support address, a long outage): asking the
    server about every unseen mail in one command overflowed the IMAP client's parser (past ~1,000
    mails) or the server's command line (Dovecot: 64 KiB, ~11,000 mails), so none was ever read."""
    await mailbox.deliver(mail("first@client.example", "Backlog 0", "mail 0")[0])
    await mailbox.drop([mail(f"c{n}@client.example", f"Backlog {n}", f"mail {n}")[0] for n in range(1, 1500)])
    assert await mailbox.unseen() == 1500
    client = await start_client(
        email_settings(embedded.uri, db_name, dovecot=dovecot, user=mailbox_user, sink=smtp_sink)
    )
    await wait_for(lambda: _count(client, 20), timeout=30)
    assert [m["text"] for m in await messages(client, direction="in")][:2] == ["mail 0", "mail 1"]


async def test_threading_by_references_reply_to_and_tokens(smtp_app: TestClient, smtp_sink: SmtpSink) -> None:
    adapter, store = adapter_of(smtp_app), smtp_app.server.app[STORE]

    async def thread_of(raw: bytes) -> str:
        message = await store.messages.get_message(await adapter.ingest(raw))
        assert message is not None
        return message.thread_id

    anna = "Anna <anna@client.example>"
    first, first_id = mail(anna, "Order 1042", "Where is my order?")
    t1 = await thread_of(first)
    t2 = await thread_of(mail(anna, "Gift wrapping", "Do you gift-wrap?")[0])
    assert t2 != t1  # a new subject from the same sender is a new conversation
    assert await thread_of(first) == t1  # a redelivery
    assert await thread_of(mail(anna, "Re: Order 1042", "More info", references=["x@elsewhere", first_id])[0]) == t1
    assert await thread_of(mail(anna, "Re: Order 1042", "Also", in_reply_to=first_id)[0]) == t1

    await wait_for(lambda: sent_count(smtp_sink, 2), timeout=10)  # the two notices
    by_thread = {}
    for _, reply, _ in smtp_sink.received:
        message_id = reply["Message-ID"][1:-1]
        found = await store.mail.threads_by_email_keys("default", [f"mid:{message_id}"])
        by_thread[found[f"mid:{message_id}"][0]] = reply
    # a reply that kept only In-Reply-To of our notice finds the thread of that notice
    notice_t2 = by_thread[t2]
    answer = mail(anna, "whatever", "Yes please", in_reply_to=notice_t2["Message-ID"][1:-1])[0]
    assert await thread_of(answer) == t2
    # the plus-address and the subject token of ours work without any header
    token_t1 = str(by_thread[t1]["Subject"]).rsplit("[#", 1)[1].rstrip("]")
    assert await thread_of(mail(anna, "Another thing", "hi", to=f"support+{token_t1}@shop.example")[0]) == t1
    assert await thread_of(mail(anna, f"Fwd [#{token_t1}]", "hi again")[0]) == t1
    # but a token is no key to someone else's conversation
    assert await thread_of(mail("bob@other.example", f"Re: Order 1042 [#{token_t1}]", "let me in")[0]) not in (t1, t2)


async def test_mail_that_must_not_be_auto_answered_is_queued_silently(
    smtp_app: TestClient, smtp_sink: SmtpSink
) -> None:
    adapter, store = adapter_of(smtp_app), smtp_app.server.app[STORE]
    expected = {
        "auto_reply": "auto_submitted",
        "bounce_dsn": "bounce",
        "bounce_no_auto_submitted": "bounce",
        "mailing_list": "mailing_list",
        "precedence_bulk": "bulk",
    }
    for name, reason in expected.items():
        message = await store.messages.get_message(await adapter.ingest((FIXTURES / f"{name}.eml").read_bytes()))
        assert message is not None
        await wait_for(lambda message_id=message.id: _dispatched(store, message_id))
        thread = await store.threads.get_thread(message.thread_id)
        assert thread is not None and thread.status == "queued" and thread.escalation_reason == reason, name
    # our own address writing to us would be a loop too
    own = await adapter.ingest(mail(f"Shop <{OUR_ADDRESS}>", "Re: x", "loop?")[0])
    await wait_for(lambda: _dispatched(store, own))
    await asyncio.sleep(0.3)
    assert smtp_sink.received == []
    # "Auto-Submitted: no" is a person: answered as usual
    await adapter.ingest((FIXTURES / "auto_submitted_no.eml").read_bytes())
    await wait_for(lambda: sent_count(smtp_sink, 1))
    assert smtp_sink.received[0][0] == ["maria@client.example"]


async def _dispatched(store: Any, message_id: str) -> bool:
    message = await store.messages.get_message(message_id)
    return message is not None and message.dispatch_state == "done"


async def test_the_smtp_listener_takes_our_domain_only_and_answers_after_recording(smtp_app: TestClient) -> None:
    client = smtp_app
    assert adapter_of(client).listener is not None
    port = adapter_of(client).listener.port
    raw, _ = mail("carol@client.example", "Via SMTP", "Hello over SMTP")
    errors, response = await aiosmtplib.send(
        raw, sender="carol@client.example", recipients=["support+abc@shop.example"], hostname="127.0.0.1", port=port
    )
    assert errors == {} and response.startswith("2.0.0 recorded")
    [recorded] = await messages(client, direction="in")
    assert recorded["text"] == "Hello over SMTP"
    assert recorded["meta"]["email"]["recipients"][0] == "support+abc@shop.example"
    with pytest.raises(aiosmtplib.SMTPRecipientsRefused):
        await aiosmtplib.send(
            raw,
            sender="carol@client.example",
            recipients=["someone@elsewhere.example"],
            hostname="127.0.0.1",
            port=port,
        )
    nobody = (FIXTURES / "no_from.eml").read_bytes()
    with pytest.raises(aiosmtplib.SMTPDataError) as refused:
        await aiosmtplib.send(
            nobody, sender="x@client.example", recipients=[OUR_ADDRESS], hostname="127.0.0.1", port=port
        )
    assert refused.value.code == 554 and "no From address" in refused.value.message


async def test_outages_leave_mail_where_it_is(
    tmp_path: Path, dovecot: Dovecot, mailbox_user: str, mailbox: Mailbox, smtp_sink: SmtpSink, start_client: Any
) -> None:
    server = EmbeddedMongo(tmp_path / "store")
    await server.start()
    try:
        port = free_port()
        client = await start_client(
            email_settings(
                server.uri, "mail_outage", dovecot=dovecot, user=mailbox_user, sink=smtp_sink, listen_port=port
            )
        )
        await server.stop()
        await mailbox.deliver(mail("dave@client.example", "During outage", "Is this stored?")[0])
        raw, _ = mail("erin@client.example", "SMTP during outage", "retry me")
        with pytest.raises(aiosmtplib.SMTPDataError) as later:
            await aiosmtplib.send(
                raw, sender="erin@client.example", recipients=[OUR_ADDRESS], hostname="127.0.0.1", port=port
            )
        assert later.value.code == 451  # the sending server keeps it and tries again
        await asyncio.sleep(2)
        assert await mailbox.unseen() == 1  # not recorded, so not marked seen
        await server.start()
        await wait_for(lambda: _count(client, 1), timeout=30)
        await wait_for(lambda: _unseen_is(mailbox, 0), timeout=10)
        await aiosmtplib.send(
            raw, sender="erin@client.example", recipients=[OUR_ADDRESS], hostname="127.0.0.1", port=port
        )
        assert sorted(m["text"] for m in await messages(client, direction="in")) == ["Is this stored?", "retry me"]
    finally:
        await server.stop()


async def _unseen_is(mailbox: Mailbox, n: int) -> bool:
    return await mailbox.unseen() == n


async def test_refused_recipients_and_smtp_trouble_become_dead_letters_or_retries(
    smtp_app: TestClient, smtp_sink: SmtpSink
) -> None:
    adapter = adapter_of(smtp_app)
    outbound = Outbound(
        account_id="default",
        channel="email",
        thread_id="thr_none",
        message_id="msg_x",
        to=Identity("email", "gone@client.example"),
        text="hello",
        meta={"sender_kind": "agent"},
    )
    smtp_sink.refuse["gone@client.example"] = "550 5.1.1 no such user"
    with pytest.raises(PermanentSendError, match="550"):
        await adapter.send(outbound)
    smtp_sink.refuse["gone@client.example"] = "451 4.7.1 greylisted, try later"
    with pytest.raises(RetryableSendError, match="451"):
        await adapter.send(outbound)
    del smtp_sink.refuse["gone@client.example"]
    assert await adapter.send(outbound) == "omnirouter.msg_x@shop.example"
    [(_, agent_reply, _)] = smtp_sink.received
    assert agent_reply["Auto-Submitted"] is None  # a person's reply is not automatic
    await smtp_sink.stop()
    with pytest.raises(RetryableSendError, match="unreachable"):
        await adapter.send(outbound)


async def test_a_reader_stopped_as_it_is_poked_stops(
    embedded: EmbeddedMongo, db_name: str, dovecot: Dovecot, mailbox_user: str, smtp_sink: SmtpSink
) -> None:
    """Shutdown cancels the reader while ``poke`` wakes it: on Python 3.11 ``asyncio.wait_for``
    returned the wake-up and dropped the cancellation, and the reader polled on after the router
    stopped (in CI it outlived its test, reconnecting every second)."""
    settings = email_settings(
        embedded.uri, db_name, dovecot=dovecot, user=mailbox_user, sink=smtp_sink, poll_interval=60, imap_idle=False
    ).section(EmailSettings)

    async def ingest(raw: bytes, recipients: Sequence[str]) -> object:
        return None

    reader = MailboxReader(settings, ingest)
    reading = asyncio.create_task(reader.run())
    await wait_for(lambda: _polled(reader), timeout=10)
    await asyncio.sleep(0.2)  # the first poll is done: the reader waits for the next
    reader.poke()
    reading.cancel()
    done, _ = await asyncio.wait({reading}, timeout=10)
    assert done == {reading} and reading.cancelled()


async def test_an_agents_file_goes_out_as_the_mails_attachment(smtp_app: TestClient, smtp_sink: SmtpSink) -> None:
    adapter, store = adapter_of(smtp_app), smtp_app.server.app[STORE]
    message = await store.messages.get_message(
        await adapter.ingest(mail("Anna <anna@client.example>", "Invoice", "Send me the invoice, please")[0])
    )
    assert message is not None
    await wait_for(lambda: sent_count(smtp_sink, 1), timeout=10)  # the notice
    admin, _ = await add_agent(store, "default", "ola", name="Ola", role=Role.ADMIN)
    assert admin is not None
    replies = smtp_app.server.app[SERVICES].replies
    invoice = AgentFile("invoice 1042.pdf", "application/pdf", b"%PDF-1.4 the invoice")
    await replies.answer(message.thread_id, admin, "Here it is.", "nonce-email-1", invoice)
    await wait_for(lambda: sent_count(smtp_sink, 2), timeout=10)
    _, reply, _ = smtp_sink.received[1]
    [attached] = list(reply.iter_attachments())
    assert attached.get_filename() == "invoice 1042.pdf" and attached.get_content_type() == "application/pdf"
    assert attached.get_content() == b"%PDF-1.4 the invoice"
    assert "Here it is." in reply.get_body(("plain",)).get_content()  # type: ignore[union-attr]


async def test_a_customers_attachment_is_read_from_the_kept_original_and_kept_as_a_file(smtp_app: TestClient) -> None:
    adapter, store = adapter_of(smtp_app), smtp_app.server.app[STORE]
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "Anna <anna@client.example>", OUR_ADDRESS, "Broken"
    msg["Message-ID"] = make_msgid(domain="client.example")
    msg.set_content("Photos attached")
    msg.add_attachment(b"\x89PNG\r\n\x1a\n-photo-", maintype="image", subtype="png", filename="box.png")
    msg.add_attachment(b"%PDF receipt", maintype="application", subtype="pdf", filename="receipt.pdf")
    message = await store.messages.get_message(await adapter.ingest(msg.as_bytes()))
    assert message is not None and [a.name for a in message.attachments] == ["box.png", "receipt.pdf"]
    adapters = smtp_app.server.app[ADAPTERS]
    photo = await attachment_file(store, adapters, 10**6, message, 0)
    assert photo.data == b"\x89PNG\r\n\x1a\n-photo-" and photo.inline and photo.content_type == "image/png"
    receipt = await attachment_file(store, adapters, 10**6, message, 1)
    assert receipt.data == b"%PDF receipt" and not receipt.inline
    assert await store.files.usage("default") == len(photo.data) + len(receipt.data)  # kept in GridFS
