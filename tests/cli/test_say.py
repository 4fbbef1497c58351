"""`omnirouter say --channel sms|email`: a real process, a real router, real provider paths."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from conversations.embedded import EmbeddedMongo, free_port
from tests.cli.test_serve import run
from tests.conftest import TEST_API_TOKEN, make_settings
from tests.fakes.twilio import ACCOUNT_SID, AUTH_TOKEN, PUBLIC_URL, FakeTwilio
from tests.handlers.conftest import OUR_ADDRESS
from tests.handlers.sms.test_sms import OUR_NUMBER, twilio  # noqa: F401  (a fixture)
from tests.mailservers import SmtpSink


async def test_say_over_sms_and_email(
    embedded: EmbeddedMongo, db_name: str, twilio: FakeTwilio, smtp_sink: SmtpSink, start_client: Any, tmp_path: Path
) -> None:
    listen = free_port()
    settings = {
        "server": {"public_url": PUBLIC_URL},
        "twilio": {"account_sid": ACCOUNT_SID, "auth_token": AUTH_TOKEN, "api_base": twilio.url},
        "sms": {"from_number": OUR_NUMBER},
        "email": {
            "address": OUR_ADDRESS,
            "listen_port": listen,
            "smtp_host": "127.0.0.1",
            "smtp_port": smtp_sink.port,
            "smtp_security": "none",
        },
    }
    client = await start_client(make_settings(embedded.uri, db_name, **settings))
    server = f"http://127.0.0.1:{client.server.port}"
    env = {
        "OMNIROUTER_PUBLIC_URL": PUBLIC_URL,
        "OMNIROUTER_TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "OMNIROUTER_TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "OMNIROUTER_SMS_FROM_NUMBER": OUR_NUMBER,
        "OMNIROUTER_EMAIL_ADDRESS": OUR_ADDRESS,
        "OMNIROUTER_EMAIL_LISTEN_PORT": str(listen),
        "OMNIROUTER_API_TOKEN": TEST_API_TOKEN,
    }  # following the message reads /api

    code, out, err = await run(
        "say",
        "where is my order?",
        "--channel",
        "sms",
        "--as",
        "+14155550199",
        "--server",
        server,
        env=env,
        cwd=tmp_path,
    )
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("recorded as msg_") and " in thread thr_" in lines[0]
    assert lines[1].startswith("queued for a human agent (reason: no_nlu)")
    assert lines[2].startswith("system: Thanks for your message!") and lines[2].endswith("(sent)")
    assert twilio.bodies_to("+14155550199")[0].startswith("Thanks for your message!")

    code, out, err = await run(
        "say",
        "Do you ship to Riga?",
        "--channel",
        "email",
        "--as",
        "anna@client.example",
        "--subject",
        "Shipping",
        "--server",
        server,
        env=env,
        cwd=tmp_path,
    )
    assert code == 0, err
    lines = out.splitlines()
    assert lines[1].startswith("queued for a human agent") and lines[2].endswith("(sent)")
    [(recipients, reply, _)] = smtp_sink.received
    assert recipients == ["anna@client.example"] and str(reply["Subject"]).startswith("Re: Shipping [#")

    code, _, err = await run(
        "say", "hi", "--channel", "sms", "--as", "alice", "--server", server, env=env, cwd=tmp_path
    )
    assert code == 2 and "--as is the sender's phone number in E.164" in err
    code, _, err = await run(
        "say", "hi", "--channel", "email", "--as", "a@b.example", "--server", server, env={}, cwd=tmp_path
    )
    assert code == 2 and err == "omnirouter: e-mail is not configured: set email.address\n"
    assert "Traceback" not in err
