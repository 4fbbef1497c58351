"""Issue 17's promise in one install: two accounts, each with two inboxes of every channel — Telegram
bots, WhatsApp numbers, Twilio numbers (for texts and calls), mailboxes and web chats — and one
customer message into each inbox, and one call to each Twilio number.
Counting what is stored per inbox finds one conversation holding one customer message in each
(and the call, in its Twilio number's), in its own account; every answer leaves through the inbox
written to, and nothing more is sent."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import aiosmtplib
import pytest
from aiohttp.test_utils import TestClient

from bot.keys import STORE
from bot.web.api.kit import issue_token
from conversations.embedded import free_port
from conversations.models import utcnow
from tests.conftest import TEST_API_TOKEN, raw_database_of
from tests.fakes import running
from tests.fakes.graph_api import PHONE_NUMBER_ID, FakeGraphAPI
from tests.fakes.telegram_api import FakeBotAPI
from tests.fakes.twilio import AUTH_TOKEN, PUBLIC_URL, FakeTwilio, post_webhook
from tests.fakes.twilio import fixture as twilio_fixture
from tests.handlers.channels import TG_SECRET, WA_SECRET, channel_settings, fixture, post_telegram, post_whatsapp, sign
from tests.handlers.conftest import OUR_ADDRESS
from tests.handlers.email.test_email import mail
from tests.handlers.email.test_email_inboxes import CUSTOMER, _mailbox
from tests.handlers.sms.test_sms import OUR_NUMBER
from tests.handlers.sms.test_sms_inboxes import LINES, _text
from tests.handlers.test_inboxes import _telegram, _wa_message, _whatsapp
from tests.handlers.webchat.test_inboxes import write
from tests.mailservers import SmtpSink
from tests.router.test_inbound import wait_for

INSTALL = {"Authorization": f"Bearer {TEST_API_TOKEN}"}
OWNERS = ("default", "default-2", "shop2", "shop2-2")  # each account's first inbox of a channel, and its extra one
# the owners whose inbox of a channel is their account's first (no inbox document): an account's
# channel settings, the install's own Twilio number, the account's first web chat
FIRST = {"telegram": ("default", "shop2"), "whatsapp": ("default", "shop2"), "webchat": ("default", "shop2")}
FIRST["sms"] = FIRST["email"] = ("default",)  # the install's own number and mailbox
# the mailboxes: the install's own (the default account's first), and one per extra inbox, each fed
# by the router's SMTP listener and answering through an SMTP server of its own
ADDRESSES = {
    "default": OUR_ADDRESS,
    "default-2": "help@alpha.example",
    "shop2": "sales@beta.example",
    "shop2-2": "help@beta.example",
}
# the Twilio numbers: the install's own (the default account's first), and one per extra inbox
NUMBERS = {
    "default": OUR_NUMBER,
    "default-2": LINES["default"][2],
    "shop2": LINES["shop2"][2],
    "shop2-2": "+14155550203",
}


@pytest.fixture
async def fakes() -> AsyncIterator[dict[str, Any]]:
    """A fake Bot API and Graph API per inbox, and a fake Twilio per Twilio account (the install's,
    the default account's, shop2's — whose two numbers share it)."""
    made: dict[str, Any] = {}
    for n, owner in enumerate(OWNERS):
        made[f"tg:{owner}"] = FakeBotAPI(token=f"{100 + n}:bot-of-{owner}")
        made[f"wa:{owner}"] = FakeGraphAPI(token=f"EAAG-{owner}", first_id=1000 * (n + 1))
    made["sms:install"] = FakeTwilio()
    for account, (sid, token, _) in LINES.items():
        made[f"sms:{account}"] = FakeTwilio(sid, token)
    for owner in OWNERS:
        made[f"mail:{owner}"] = SmtpSink()
    async with running(*made.values()):
        yield made


def _account(owner: str) -> str:
    return owner.removesuffix("-2")


def _twilio(owner: str, fakes: dict[str, Any]) -> dict[str, str]:
    sid, token, _ = LINES[_account(owner)]
    fake = fakes[f"sms:{_account(owner)}"]
    number = NUMBERS[owner]
    return {"account_sid": sid, "auth_token": token, "from_number": number, "api_base": fake.url, "serves": "both"}


async def _inboxes(client: TestClient, fakes: dict[str, Any]) -> dict[str, str]:
    """shop2's first Telegram bot and WhatsApp number (its channel settings), and the extra inboxes
    each account adds through the API: ``<channel>:<owner>`` -> inbox id."""
    store = client.server.app[STORE]
    await store.accounts.ensure_account("shop2", "Shop two", utcnow())
    await store.accounts.set_account_channel("shop2", "telegram", _telegram(fakes["tg:shop2"], "shop2-tg"))
    await store.accounts.set_account_channel("shop2", "whatsapp", _whatsapp(fakes["wa:shop2"], "2001", "shop2-wa"))
    token = await issue_token(store, "shop2", "ops", ["read", "write"], "test")
    headers = {"default": INSTALL, "shop2": {"Authorization": f"Bearer {token}"}}
    extra = {
        "telegram": {o: _telegram(fakes[f"tg:{o}"], f"{o}-tg") for o in ("default-2", "shop2-2")},
        "whatsapp": {
            o: _whatsapp(fakes[f"wa:{o}"], n, f"{o}-wa") for o, n in (("default-2", "1002"), ("shop2-2", "2002"))
        },
        # shop2 has no Twilio number in its channel settings (accounts have none): both are inboxes
        "sms": {o: _twilio(o, fakes) for o in ("default-2", "shop2", "shop2-2")},
        "webchat": {o: {"greeting": f"Hello from {o}"} for o in ("default-2", "shop2-2")},
        "email": {o: _mailbox(ADDRESSES[o], fakes[f"mail:{o}"], None) for o in ("default-2", "shop2", "shop2-2")},
    }
    created = {}
    for channel, configs in extra.items():
        for owner, config in configs.items():
            body = {"channel": channel, "name": f"{owner} {channel}", "settings": config}
            answer = await client.post(
                f"/api/accounts/{_account(owner)}/inboxes", json=body, headers=headers[_account(owner)]
            )
            assert answer.status == 201, await answer.text()
            shown = await answer.json()
            assert all(str(v) not in json.dumps(shown) for k, v in config.items() if k.endswith("token"))
            created[f"{channel}:{owner}"] = shown["id"]
    for owner in ("default-2", "shop2", "shop2-2"):  # their domains proven (test_email_domains.py: how)
        await client.server.app[STORE].mail_domains.mark_verified(
            _account(owner), ADDRESSES[owner].rpartition("@")[2], utcnow()
        )
    return created


async def test_two_accounts_with_two_inboxes_of_every_channel_never_cross(
    embedded: Any, db_name: str, start_client: Any, fakes: dict[str, Any]
) -> None:
    settings = channel_settings(
        embedded.uri,
        db_name,
        telegram_api=fakes["tg:default"].url,
        graph_api=fakes["wa:default"].url,
        egress={"allowed_destinations": ", ".join(_address(fake) for fake in fakes.values())},
        telegram={"token": fakes["tg:default"].token},
        whatsapp={"access_token": fakes["wa:default"].token},
        server={"public_url": PUBLIC_URL},
        twilio={
            "account_sid": fakes["sms:install"].account_sid,
            "auth_token": AUTH_TOKEN,
            "api_base": fakes["sms:install"].url,
        },
        sms={"from_number": OUR_NUMBER},
        voice={"enabled": True},  # the install's own number takes calls too
        email={
            "address": OUR_ADDRESS,
            "smtp_host": "127.0.0.1",
            "smtp_port": fakes["mail:default"].port,
            "smtp_security": "none",
            "listen_port": (listen := free_port()),
        },
    )
    client: TestClient = await start_client(settings)
    store = client.server.app[STORE]
    inbox = await _inboxes(client, fakes)

    def inbox_of(channel: str, owner: str) -> str:
        return "" if owner in FIRST[channel] else inbox[f"{channel}:{owner}"]

    # the same person writes to every inbox
    update = fixture("telegram", "text")
    for owner in OWNERS:
        path = {"default": "/webhooks/telegram", "shop2": "/webhooks/telegram/shop2"}.get(
            owner, f"/webhooks/telegram/{_account(owner)}/{inbox_of('telegram', owner)}"
        )
        secret = TG_SECRET if owner == "default" else f"{owner}-tg"
        assert (await post_telegram(client, update, secret=secret, path=path)).status == 200
    wa_numbers = {"default": PHONE_NUMBER_ID, "default-2": "1002", "shop2": "2001", "shop2-2": "2002"}
    for n, owner in enumerate(OWNERS):
        path = {"default": "/webhooks/whatsapp", "shop2": "/webhooks/whatsapp/shop2"}.get(
            owner, f"/webhooks/whatsapp/{_account(owner)}/{inbox_of('whatsapp', owner)}"
        )
        body = json.dumps(_wa_message(wa_numbers[owner], f"wamid.EVERY{n}")).encode()
        signature = sign(body, WA_SECRET if owner == "default" else f"{owner}-wa")
        assert (await post_whatsapp(client, body, signature=signature, path=path)).status == 200
    for n, owner in enumerate(OWNERS):
        token = AUTH_TOKEN if owner == "default" else LINES[_account(owner)][1]
        assert (await _text(client, NUMBERS[owner], f"SM{n:032x}", token)).status == 200
    for n, owner in enumerate(OWNERS):  # and calls each number (answered: nothing is queued or sent)
        token = AUTH_TOKEN if owner == "default" else LINES[_account(owner)][1]
        to = NUMBERS[owner]
        call = twilio_fixture("voice", "status_completed_inbound", To=to, Called=to, CallSid=f"CA{n:032x}")
        assert (await post_webhook(client, "/webhooks/voice", call, token=token)).status == 200
    for owner in OWNERS:
        place = {"account": _account(owner)}
        if inbox_of("webchat", owner):
            place["inbox"] = inbox_of("webchat", owner)
        await write(client, place, f"hello {owner}")

    raw, _ = mail(f"Ivan <{CUSTOMER}>", "Where is my order?", "Hello", to=", ".join(ADDRESSES.values()))
    await aiosmtplib.send(raw, sender=CUSTOMER, recipients=list(ADDRESSES.values()), hostname="127.0.0.1", port=listen)

    async def all_answered() -> bool:
        return (
            all(fakes[f"tg:{o}"].sent("sendMessage") and fakes[f"wa:{o}"].sent() for o in OWNERS)
            and len(fakes["sms:install"].sent) >= 1
            and len(fakes["sms:default"].sent) >= 1
            and len(fakes["sms:shop2"].sent) >= 2
            and all(fakes[f"mail:{o}"].received for o in OWNERS)
        )

    await wait_for(all_answered, timeout=60)

    # one conversation and one customer message in each inbox, each in its own account
    database = raw_database_of(store)
    threads = await database.threads.find({}).to_list()
    places = Counter((t["account_id"], t["channel"], t.get("inbox_id") or "") for t in threads)
    expected = Counter(
        (_account(owner), channel, inbox_of(channel, owner))
        for channel in ("telegram", "whatsapp", "sms", "email", "webchat")
        for owner in OWNERS
    )
    assert places == expected and len(places) == 20
    place_of = {t["_id"]: (t["account_id"], t["channel"], t.get("inbox_id") or "") for t in threads}
    inbound = await database.messages.find({"direction": "in", "channel": {"$ne": "voice"}}).to_list()
    assert Counter(place_of[m["thread_id"]] for m in inbound) == expected
    assert all(m["account_id"] == place_of[m["thread_id"]][0] for m in inbound)
    # each call in its Twilio number's conversation (the number's SMS one), in its own account
    calls = await database.messages.find({"channel": "voice"}).to_list()
    assert Counter(place_of[m["thread_id"]] for m in calls) == Counter(
        (_account(owner), "sms", inbox_of("sms", owner)) for owner in OWNERS
    )
    assert all(m["account_id"] == place_of[m["thread_id"]][0] for m in calls)

    # each answer went out once, through the bot, number or Twilio account written to
    for owner in OWNERS:
        assert len(fakes[f"tg:{owner}"].sent("sendMessage")) == 1 and len(fakes[f"wa:{owner}"].sent()) == 1
        assert all(f"/{wa_numbers[owner]}/messages" in r.path for r in fakes[f"wa:{owner}"].requests)
    assert [s["From"] for s in fakes["sms:install"].sent] == [OUR_NUMBER]
    assert [s["From"] for s in fakes["sms:default"].sent] == [NUMBERS["default-2"]]
    assert sorted(s["From"] for s in fakes["sms:shop2"].sent) == sorted([NUMBERS["shop2"], NUMBERS["shop2-2"]])
    for owner in OWNERS:  # each mailbox's answer from its address, through its own SMTP server
        [(recipients, reply, _)] = fakes[f"mail:{owner}"].received
        assert recipients == [CUSTOMER] and reply["From"].addresses[0].addr_spec == ADDRESSES[owner]


def _address(fake: Any) -> str:
    """Where a fake listens, as the egress guard's allowed destinations name it."""
    return fake.url.removeprefix("http://") if hasattr(fake, "url") else f"127.0.0.1:{fake.port}"
