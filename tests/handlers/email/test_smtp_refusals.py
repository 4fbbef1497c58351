"""The SMTP listener refuses a recipient that is no mailbox's with 550, counts it in the metrics
and logs it at INFO: anyone can send such recipients, as many as they like, and a flood of them
must not fill the operator's warnings."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import aiosmtplib
import pytest

from bot.handlers.email.mailboxes import Mailbox
from bot.handlers.email.settings import EmailSettings
from bot.handlers.email.smtp import SmtpListener
from bot.metrics import Metrics
from conversations.embedded import free_port
from tests.handlers.email.test_email import mail


async def _no_mailbox(address: str) -> Mailbox | None:
    return None


async def _never(raw: bytes, recipients: Sequence[str], mailbox: Mailbox) -> None:
    raise AssertionError("nothing is stored for a recipient that is no mailbox's")


async def test_unknown_recipients_are_counted_and_logged_at_info(caplog: pytest.LogCaptureFixture) -> None:
    metrics = Metrics()
    settings = EmailSettings(address="help@alpha.example", listen_host="127.0.0.1", listen_port=free_port())
    listener = SmtpListener(settings, _no_mailbox, _never, metrics)
    await listener.start()
    raw, _ = mail("jane@client.example", "Hello", "hi", to="nobody@alpha.example")
    caplog.set_level(logging.INFO, "omnirouter.handlers.email.smtp")
    try:
        for recipient in ("nobody@alpha.example", "ghost@beta.example", "x@alpha.example"):
            with pytest.raises(aiosmtplib.SMTPRecipientsRefused) as refused:
                await aiosmtplib.send(
                    raw, sender="jane@client.example", recipients=[recipient], hostname="127.0.0.1", port=listener.port
                )
            assert [r.code for r in refused.value.recipients] == [550]
    finally:
        await listener.stop()
    logged = [r for r in caplog.records if r.getMessage() == "smtp.unknown_recipient"]
    assert [r.levelno for r in logged] == [logging.INFO] * 3
    labels = {"channel": "email", "reason": "unknown_recipient"}
    assert metrics.registry.get_sample_value("omnirouter_inbound_refused_total", labels) == 3
