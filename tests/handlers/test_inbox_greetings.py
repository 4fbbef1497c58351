"""An inbox's greeting: sent once, as the first message of a new conversation in that inbox (before
the bot's answer), never again in it, and never by another inbox or another account. Through the
real Telegram and WhatsApp channels, against the fake Bot API and Graph API."""

from __future__ import annotations

import copy
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from bot.keys import STORE
from bot.web.api.kit import issue_token
from conversations.models import utcnow
from conversations.repositories import Repositories
from conversations.thread_models import Direction
from tests.conftest import TEST_API_TOKEN, raw_database_of
from tests.fakes import running
from tests.fakes.graph_api import FakeGraphAPI
from tests.fakes.telegram_api import FakeBotAPI
from tests.handlers.channels import TG_SECRET, fixture, own_channels, post_telegram, post_whatsapp, sign
from tests.nlu.conftest import install, starter_blob  # noqa: F401 (the session's starter model)
from tests.router.test_inbound import wait_for

INSTALL = {"Authorization": f"Bearer {TEST_API_TOKEN}"}
QUESTION = "what are your opening hours?"
HELLO = "Hi! This is the sales desk."
SHOP2_HELLO = "Welcome to shop two."
SHOP2_ACCOUNT_HELLO = "Shop two, at your service."
OWNERS = ("default", "greeted", "plain", "shop2", "shop2-greeted")


@pytest.fixture
async def fakes() -> AsyncIterator[dict[str, Any]]:
    """One fake Bot API and one fake Graph API per inbox, each with its own token."""
    made: dict[str, Any] = {}
    for n, owner in enumerate(OWNERS):
        made[f"tg:{owner}"] = FakeBotAPI(token=f"{200 + n}:bot-of-{owner}")
        made[f"wa:{owner}"] = FakeGraphAPI(token=f"EAAG-{owner}", first_id=1000 * (n + 1))
    async with running(*made.values()):
        yield made


def _telegram(fake: FakeBotAPI, secret: str, greeting: str = "") -> dict[str, Any]:
    config = {"token": fake.token, "webhook_secret": secret, "api_base": fake.url}
    return {**config, "greeting": greeting} if greeting else config


def _whatsapp(fake: FakeGraphAPI, number: str, secret: str, greeting: str = "") -> dict[str, Any]:
    config = {
        "phone_number_id": number,
        "access_token": fake.token,
        "app_secret": secret,
        "verify_token": f"verify-{number}",
        "api_base": fake.url,
    }
    return {**config, "greeting": greeting} if greeting else config


def _tg_update(n: int, text: str, user: int = 5512345678) -> dict[str, Any]:
    update = copy.deepcopy(fixture("telegram", "text"))
    update["update_id"] = 730002000 + n
    update["message"].update(message_id=500 + n, text=text, date=int(time.time()))
    update["message"]["from"]["id"] = update["message"]["chat"]["id"] = user
    return update


def _wa_message(number: str, n: int, text: str) -> bytes:
    body = copy.deepcopy(fixture("whatsapp", "text"))
    change = body["entry"][0]["changes"][0]["value"]
    change["metadata"]["phone_number_id"] = number
    change["messages"][0].update(id=f"wamid.GREET{n}", timestamp=str(int(time.time())), text={"body": text})
    return json.dumps(body).encode()


async def _settled(store: Repositories, account: str, inbound: int) -> bool:
    """Whether the account's ``inbound`` messages are all decided and every reply to them sent."""
    db = raw_database_of(store)
    decided = await db.messages.count_documents({"account_id": account, "direction": "in", "decision": {"$ne": None}})
    unsent = await db.messages.count_documents(
        {"account_id": account, "direction": "out", "delivery_status": {"$nin": ["sent", "delivered", "read"]}}
    )
    return decided >= inbound and unsent == 0


def _tg_texts(fake: FakeBotAPI) -> list[str]:
    return [str(params["text"]) for params in fake.sent("sendMessage")]


def _wa_texts(fake: FakeGraphAPI) -> list[str]:
    return [str(body.get("text", {}).get("body", "")) for body in fake.sent()]


async def _add(client: TestClient, account: str, headers: dict[str, str], channel: str, config: Any) -> str:
    body = {"channel": channel, "name": f"{account} {channel} {len(str(config))}", "settings": config}
    answer = await client.post(f"/api/accounts/{account}/inboxes", json=body, headers=headers)
    assert answer.status == 201, await answer.text()
    shown = await answer.json()
    assert shown["settings"].get("greeting", "") == config.get("greeting", "")  # shown back: it is no secret
    return str(shown["id"])


async def test_a_new_conversation_is_greeted_once_by_its_own_inbox_only(
    embedded: Any, db_name: str, store: Repositories, start_client: Any, fakes: dict[str, Any], starter_blob: bytes
) -> None:
    await install(store, starter_blob)
    await install(store, starter_blob, "starter-shop2", "shop2")
    settings = own_channels(embedded.uri, db_name, fakes["tg:default"], fakes["wa:default"], fakes.values())
    client: TestClient = await start_client(settings)
    store = client.server.app[STORE]  # the router's own (its accounts' settings cached with it)
    await store.accounts.ensure_account("shop2", "Shop two", utcnow())
    await store.accounts.set_account_channel("shop2", "telegram", _telegram(fakes["tg:shop2"], "shop2-tg"))
    shop2 = {"Authorization": f"Bearer {await issue_token(store, 'shop2', 'ops', ['read', 'write'], 'test')}"}

    greeted_tg = await _add(client, "default", INSTALL, "telegram", _telegram(fakes["tg:greeted"], "g-tg", HELLO))
    plain_tg = await _add(client, "default", INSTALL, "telegram", _telegram(fakes["tg:plain"], "p-tg"))
    greeted_wa = await _add(client, "default", INSTALL, "whatsapp", _whatsapp(fakes["wa:greeted"], "1101", "g", HELLO))
    plain_wa = await _add(client, "default", INSTALL, "whatsapp", _whatsapp(fakes["wa:plain"], "1102", "p"))
    shop2_tg = await _add(client, "shop2", shop2, "telegram", _telegram(fakes["tg:shop2-greeted"], "s-tg", SHOP2_HELLO))
    # shop2's own greeting for its first inboxes; the default account has none
    answer = await client.patch("/api/accounts/shop2", json={"greeting": SHOP2_ACCOUNT_HELLO}, headers=shop2)
    assert answer.status == 200, await answer.text()

    telegram = {
        "greeted": (f"/webhooks/telegram/default/{greeted_tg}", "g-tg"),
        "plain": (f"/webhooks/telegram/default/{plain_tg}", "p-tg"),
        "default": ("/webhooks/telegram", TG_SECRET),
        "shop2-greeted": (f"/webhooks/telegram/shop2/{shop2_tg}", "s-tg"),
        "shop2": ("/webhooks/telegram/shop2", "shop2-tg"),
    }
    whatsapp = {
        "greeted": (f"/webhooks/whatsapp/default/{greeted_wa}", "1101", "g"),
        "plain": (f"/webhooks/whatsapp/default/{plain_wa}", "1102", "p"),
    }
    for turn in range(2):  # the conversation's first message, then its second
        for n, (path, secret) in enumerate(telegram.values()):
            update = _tg_update(10 * turn + n, QUESTION)
            assert (await post_telegram(client, update, secret=secret, path=path)).status == 200
        for n, (path, number, secret) in enumerate(whatsapp.values()):
            body = _wa_message(number, 10 * turn + n, QUESTION)
            assert (await post_whatsapp(client, body, signature=sign(body, secret), path=path)).status == 200
        done = turn + 1
        await wait_for(lambda done=done: _settled(store, "default", 5 * done), timeout=30)
        await wait_for(lambda done=done: _settled(store, "shop2", 2 * done), timeout=30)

    greeted = _tg_texts(fakes["tg:greeted"])
    assert greeted[0] == HELLO and len(greeted) == 3, greeted  # the greeting, the answer, the next answer
    assert greeted[1] == greeted[2] != HELLO
    assert _wa_texts(fakes["wa:greeted"])[0] == HELLO and _wa_texts(fakes["wa:greeted"]).count(HELLO) == 1
    assert len(_wa_texts(fakes["wa:greeted"])) == 3
    for fake in (fakes["tg:plain"], fakes["tg:default"], fakes["wa:plain"]):  # no greeting of their own
        texts = _tg_texts(fake) if isinstance(fake, FakeBotAPI) else _wa_texts(fake)
        assert len(texts) == 2 and not {HELLO, SHOP2_HELLO, SHOP2_ACCOUNT_HELLO} & set(texts), texts
    # the other account: its inbox's greeting, and its account's for its first bot, never the other's
    assert _tg_texts(fakes["tg:shop2-greeted"])[0] == SHOP2_HELLO and len(_tg_texts(fakes["tg:shop2-greeted"])) == 3
    assert _tg_texts(fakes["tg:shop2"])[0] == SHOP2_ACCOUNT_HELLO and len(_tg_texts(fakes["tg:shop2"])) == 3
    assert HELLO not in _tg_texts(fakes["tg:shop2"]) + _tg_texts(fakes["tg:shop2-greeted"])

    # stored as the conversation's first reply, shown like any other (a system message)
    greeting = await raw_database_of(store).messages.find_one({"text": HELLO, "channel": "telegram"})
    assert greeting is not None and greeting["direction"] == str(Direction.OUT)
    assert greeting["sender"]["kind"] == "system" and greeting["delivery_status"] == "sent"
    thread_replies = await raw_database_of(store).messages.find({"thread_id": greeting["thread_id"]}).to_list()
    outbound = sorted((m for m in thread_replies if m["direction"] == "out"), key=lambda m: m["created_at"])
    assert [m["text"] for m in outbound].count(HELLO) == 1


async def test_telegram_start_is_the_first_message_and_gets_the_greeting(
    embedded: Any, db_name: str, store: Repositories, start_client: Any, fakes: dict[str, Any], starter_blob: bytes
) -> None:
    await install(store, starter_blob)
    settings = own_channels(embedded.uri, db_name, fakes["tg:default"], fakes["wa:default"], fakes.values())
    client: TestClient = await start_client(settings)
    inbox = await _add(client, "default", INSTALL, "telegram", _telegram(fakes["tg:greeted"], "g-tg", HELLO))
    path = f"/webhooks/telegram/default/{inbox}"
    assert (await post_telegram(client, _tg_update(1, "/start"), secret="g-tg", path=path)).status == 200
    await wait_for(lambda: _settled(store, "default", 1), timeout=30)
    assert _tg_texts(fakes["tg:greeted"])[0] == HELLO
    assert (await post_telegram(client, _tg_update(2, QUESTION), secret="g-tg", path=path)).status == 200
    await wait_for(lambda: _settled(store, "default", 2), timeout=30)
    assert _tg_texts(fakes["tg:greeted"]).count(HELLO) == 1
