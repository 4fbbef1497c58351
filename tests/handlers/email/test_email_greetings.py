"""A mailbox greets a new conversation (the account's greeting, before the queue's notice), but the
e-mail loop rules hold for it as for every automatic answer: never to an auto-reply or a no-reply
sender. Over the real SMTP listener and an SMTP sink."""

from __future__ import annotations

from email.message import EmailMessage

from aiohttp.test_utils import TestClient

from bot.keys import STORE
from tests import factories
from tests.conftest import TEST_API_TOKEN
from tests.handlers.email.test_email import _dispatched, adapter_of, mail, sent_count, smtp_app  # noqa: F401
from tests.mailservers import SmtpSink
from tests.router.test_inbound import wait_for

INSTALL = {"Authorization": f"Bearer {TEST_API_TOKEN}"}
HELLO = "Hello from the shop!"


async def test_a_mail_is_greeted_but_never_an_auto_reply_or_a_no_reply_sender(
    smtp_app: TestClient, smtp_sink: SmtpSink
) -> None:
    answer = await smtp_app.patch("/api/accounts/default", json={"greeting": HELLO}, headers=INSTALL)
    assert answer.status == 200, await answer.text()
    adapter, store = adapter_of(smtp_app), smtp_app.server.app[STORE]
    first = await adapter.ingest(mail("Anna <anna@client.example>", "Hi", "Where is my order?")[0])
    await wait_for(lambda: sent_count(smtp_sink, 2), timeout=10)  # the greeting, then the queue's notice
    greeting, notice = (message for _, message, _ in smtp_sink.received)
    assert HELLO in _text(greeting) and HELLO not in _text(notice)
    assert greeting["To"] == notice["To"] == "anna@client.example"
    assert await _dispatched(store, first)

    for raw, _ in (
        mail("Bob <bob@client.example>", "Out of office", "I am away.", Auto_Submitted="auto-replied"),
        mail("Shop <noreply@client.example>", "Your receipt", "Thanks for your order."),
    ):
        message_id = await adapter.ingest(raw)
        await wait_for(lambda message_id=message_id: _dispatched(store, message_id), timeout=10)
    replies = [m for m in await factories.messages(store, direction="out") if m.text == HELLO]
    assert len(replies) == 1 and len(smtp_sink.received) == 2  # nothing greeted an automatic mail


def _text(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None
    return str(part.get_content())
