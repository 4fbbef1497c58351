"""A provider's refusal names the recipient ("<jane@…>: Recipient address rejected", "The 'To'
phone number +1… is not reachable"): the outbox item's ``last_error`` keeps the whole text (erasing
the contact removes it), the router's log lines at every level say the error without the address
or the number (logs outlive an erasure)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from bot.handlers.email.adapter import EmailAdapter
from bot.keys import ADAPTERS, STORE
from bot.logs import TextFormatter, without_contacts
from bot.services.contacts import erase_contact, find_contact
from conversations.repositories import Repositories
from conversations.thread_models import OutboxState
from tests import factories
from tests.fakes.twilio import FakeTwilio, fixture, post_webhook
from tests.handlers.email.test_email import mail
from tests.handlers.sms.test_sms import OUR_NUMBER, sms_settings
from tests.mailservers import SmtpSink
from tests.router.test_inbound import wait_for

PHONE, EMAIL = "+37120000417", "jane.kalnina@pasts.example"
SMTP_REFUSAL = f"550 5.1.1 <{EMAIL}>: Recipient address rejected: User unknown"
TWILIO_BUSY = f"The 'To' phone number {PHONE} cannot be reached right now"
TWILIO_REFUSAL = (
    f"The 'To' phone number: {PHONE}, is not currently reachable using the 'From' phone number: {OUR_NUMBER}"
)


@pytest.fixture
async def shop(
    embedded: Any, db_name: str, start_client: Any
) -> AsyncIterator[tuple[TestClient, FakeTwilio, SmtpSink]]:
    twilio, sink = FakeTwilio(), SmtpSink()
    await twilio.start()
    await sink.start()
    client = await start_client(
        sms_settings(
            embedded.uri,
            db_name,
            twilio.url,
            email={
                "address": "support@shop.example",
                "smtp_host": "127.0.0.1",
                "smtp_port": sink.port,
                "smtp_security": "none",
            },
        )
    )
    try:
        yield client, twilio, sink
    finally:
        await sink.stop()
        await twilio.stop()


async def dead_letters(store: Repositories, count: int) -> list[dict[str, Any]]:
    async def all_dead() -> bool:
        return len(await factories.outbox(store, state=OutboxState.DEAD)) == count

    await wait_for(all_dead, timeout=15)
    items = sorted(await factories.outbox(store, state=OutboxState.DEAD), key=lambda item: item.channel)
    return [item.to_doc() for item in items]


def router_lines(records: list[logging.LogRecord]) -> str:
    """What the router's logs hold: its own loggers at every level, libraries at WARNING and above
    (``configure_logging``), each line as the text formatter writes it, traceback included."""
    formatter = TextFormatter()
    return "\n".join(
        formatter.format(r) for r in records if r.name.startswith("omnirouter") or r.levelno >= logging.WARNING
    )


async def test_a_refused_recipient_is_in_last_error_and_in_no_log_line(
    shop: tuple[TestClient, FakeTwilio, SmtpSink], caplog: pytest.LogCaptureFixture
) -> None:
    client, twilio, sink = shop
    store = client.server.app[STORE]
    caplog.set_level(logging.DEBUG)
    twilio.failures = [
        (503, {"code": 20503, "message": TWILIO_BUSY}),
        (400, {"code": 21612, "message": TWILIO_REFUSAL}),
    ]
    sink.refuse[EMAIL] = SMTP_REFUSAL
    params = fixture("sms", "inbound_text", From=PHONE, Body="where is my parcel?", MessageSid="SM" + "5" * 32)
    assert (await post_webhook(client, "/webhooks/sms", params)).status == 200
    adapter = client.server.app[ADAPTERS]["email"]
    assert isinstance(adapter, EmailAdapter)
    await adapter.ingest(mail(f"Jane <{EMAIL}>", "My parcel", "Where is it?")[0])

    email_item, sms_item = await dead_letters(store, 2)  # the queued notices, refused by both providers

    async def both_logged() -> bool:  # each is logged once its dead letter is stored
        return router_lines(caplog.records).count("outbox.dead_letter") >= 2

    await wait_for(both_logged, timeout=15)
    assert EMAIL in email_item["last_error"] and "550 5.1.1" in email_item["last_error"]
    assert PHONE in sms_item["last_error"] and "21612" in sms_item["last_error"]
    logged = router_lines(caplog.records)
    assert "outbox.retry" in logged and "outbox.dead_letter" in logged
    for needle in (EMAIL, "jane.kalnina", PHONE, PHONE[1:], OUR_NUMBER):
        assert needle not in logged, needle
    assert "550 5.1.1 <[address]>: Recipient address rejected" in logged and "code 21612" in logged

    for address in (f"sms:{PHONE}", f"email:{EMAIL}"):  # and erasing the contact takes the whole text away
        await erase_contact(store, await find_contact(store, "default", address), "cli")
    assert await factories.outbox(store) == []


def test_addresses_and_numbers_are_redacted_codes_are_not() -> None:
    assert (
        without_contacts(f"recipient refused: {SMTP_REFUSAL}")
        == "recipient refused: 550 5.1.1 <[address]>: Recipient address rejected: User unknown"
    )
    assert (
        without_contacts("Twilio answered 503 (code 20503): call +371 2000 0417 or (415) 555-0123")
        == "Twilio answered 503 (code 20503): call [number] or [number]"
    )
    assert (
        without_contacts("SMTP server answered 451 4.7.1 greylisted, try later")
        == "SMTP server answered 451 4.7.1 greylisted, try later"
    )
