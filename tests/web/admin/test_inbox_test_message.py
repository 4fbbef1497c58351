"""Send a test message through an inbox (issue 17): from the console's inboxes page and the API, the
text goes out through that inbox's own bot or number (the fake providers see its token), a provider's
refusal is shown in words (502 in the API), a bad recipient is a form error (422), nothing is stored
as a conversation, each send is audit-logged, and another account's inbox is out of reach."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from bot.keys import STORE
from bot.web.api.kit import issue_token
from bot.web.keys import FIRST_ADMIN
from conversations.models import utcnow
from tests.conftest import TEST_API_TOKEN, raw_database_of
from tests.fakes import running
from tests.fakes.graph_api import FakeGraphAPI
from tests.fakes.telegram_api import FakeBotAPI
from tests.handlers.channels import own_channels
from tests.web.console.test_console import console_csrf, log_in

INSTALL = {"Authorization": f"Bearer {TEST_API_TOKEN}"}


@pytest.fixture
async def fakes() -> AsyncIterator[dict[str, Any]]:
    made: dict[str, Any] = {
        "tg": FakeBotAPI(token="100:first-bot"),
        "tg2": FakeBotAPI(token="200:second-bot"),
        "wa": FakeGraphAPI(token="EAAG-first", first_id=1000),
        "wa2": FakeGraphAPI(token="EAAG-second", first_id=2000),
    }
    async with running(*made.values()):
        yield made


@pytest.fixture
async def world(embedded: Any, db_name: str, start_client: Any, fakes: dict[str, Any]) -> dict[str, Any]:
    """The install's account with a second Telegram bot and a second WhatsApp number; another
    account with a bot of its own."""
    settings = own_channels(embedded.uri, db_name, fakes["tg"], fakes["wa"], fakes.values())
    client: TestClient = await start_client(settings)
    store = client.server.app[STORE]
    tg = {"token": fakes["tg2"].token, "webhook_secret": "s2", "api_base": fakes["tg2"].url}
    wa = {
        "phone_number_id": "1002",
        "access_token": fakes["wa2"].token,
        "app_secret": "a2",
        "verify_token": "v2",
        "api_base": fakes["wa2"].url,
    }
    sales = await store.inboxes.create_inbox("default", "telegram", "Sales bot", tg, utcnow(), None)
    support = await store.inboxes.create_inbox("default", "whatsapp", "Support number", wa, utcnow(), "whatsapp:1002")
    await store.accounts.ensure_account("shop2", "Shop two", utcnow())
    theirs = await store.inboxes.create_inbox(
        "shop2", "telegram", "Their bot", {**tg, "token": "300:x"}, utcnow(), None
    )
    shop2 = {"Authorization": f"Bearer {await issue_token(store, 'shop2', 'ops', ['read', 'write'], 'test')}"}
    return {"client": client, "store": store, "sales": sales, "support": support, "theirs": theirs, "shop2": shop2}


async def _nothing_stored(store: Any) -> None:
    db = raw_database_of(store)
    assert await db.threads.count_documents({}) == 0 and await db.messages.count_documents({}) == 0


async def _tests_audited(store: Any) -> list[dict[str, Any]]:
    return await raw_database_of(store).audit.find({"action": "inbox.test"}).to_list()


async def test_the_api_sends_through_the_inboxs_own_bot_and_number(
    world: dict[str, Any], fakes: dict[str, Any]
) -> None:
    client, store, sales, support = world["client"], world["store"], world["sales"], world["support"]
    path = f"/api/accounts/default/inboxes/{sales.id}/test"

    answer = await client.post(path, json={"to": "4242"}, headers=INSTALL)
    assert answer.status == 200 and await answer.json() == {"sent": True}
    [sent] = fakes["tg2"].sent("sendMessage")
    assert str(sent["chat_id"]) == "4242" and sent["text"] == "omnirouter test message from Sales bot"
    assert fakes["tg"].sent("sendMessage") == []  # not the account's first bot

    answer = await client.post(
        f"/api/accounts/default/inboxes/{support.id}/test", json={"to": "+37120000000"}, headers=INSTALL
    )
    assert answer.status == 200, await answer.text()
    [request] = fakes["wa2"].requests
    assert request.path.endswith("/1002/messages") and request.authorization == "Bearer EAAG-second"
    assert request.body["to"] == "37120000000" and "Support number" in str(request.body)
    assert fakes["wa"].requests == []

    # the first inbox of a channel, by the channel's name: the account's own bot
    answer = await client.post("/api/accounts/default/inboxes/telegram/test", json={"to": "77"}, headers=INSTALL)
    assert answer.status == 200
    assert [str(m["chat_id"]) for m in fakes["tg"].sent("sendMessage")] == ["77"]

    await _nothing_stored(store)
    assert len(await _tests_audited(store)) == 3


async def test_the_api_says_why_not_sent_and_refuses_bad_recipients_and_other_accounts(
    world: dict[str, Any], fakes: dict[str, Any]
) -> None:
    client, store, sales, support = world["client"], world["store"], world["sales"], world["support"]
    path = f"/api/accounts/default/inboxes/{sales.id}/test"
    fakes["tg2"].fail_next(403)
    refused = await client.post(path, json={"to": "4242"}, headers=INSTALL)
    assert refused.status == 502
    shown = await refused.json()
    assert shown["error"] == "provider_refused" and "blocked by the user" in shown["detail"]
    fakes["wa2"].fail_next(400, code=131047, message="(#131047) Re-engagement message")
    refused = await client.post(
        f"/api/accounts/default/inboxes/{support.id}/test", json={"to": "+37120000000"}, headers=INSTALL
    )
    assert refused.status == 502 and "Re-engagement" in (await refused.json())["detail"]

    for to in ("abc", "+1", "12 34"):
        bad = await client.post(path, json={"to": to}, headers=INSTALL)
        assert bad.status == 422 and (await bad.json())["error"] == "bad_recipient"
    bad = await client.post(
        f"/api/accounts/default/inboxes/{support.id}/test", json={"to": "37120000000"}, headers=INSTALL
    )
    assert bad.status == 422  # a WhatsApp number in E.164, with its +
    assert (await client.post(path, json={}, headers=INSTALL)).status == 400

    # another account's inbox: not found from either side of the path
    shop2 = world["shop2"]
    assert (await client.post(path, json={"to": "4242"}, headers=shop2)).status == 404
    cross = f"/api/accounts/shop2/inboxes/{sales.id}/test"
    assert (await client.post(cross, json={"to": "4242"}, headers=shop2)).status == 404
    theirs = f"/api/accounts/default/inboxes/{world['theirs'].id}/test"
    assert (await client.post(theirs, json={"to": "4242"}, headers=INSTALL)).status == 404

    await store.inboxes.update_inbox("default", sales.id, {}, disabled=True)
    off = await client.post(path, json={"to": "4242"}, headers=INSTALL)
    assert off.status == 422 and (await off.json())["error"] == "inbox_disabled"
    assert len(fakes["tg2"].sent("sendMessage")) == 1  # the one refused above; nothing since
    await _nothing_stored(store)
    assert [e["details"]["sent"] for e in await _tests_audited(store)] == [False, False]


async def test_the_console_page_sends_a_test_message_and_shows_the_answer(
    world: dict[str, Any], fakes: dict[str, Any]
) -> None:
    client, store, sales = world["client"], world["store"], world["sales"]
    login, password = client.server.app[FIRST_ADMIN]
    assert (await log_in(client, login, password)).status == 303
    csrf = await console_csrf(client, "/admin/inboxes")
    page = await (await client.get("/admin/inboxes")).text()
    assert f'action="/admin/inboxes/{sales.id}/test"' in page and 'action="/admin/inboxes/whatsapp/test"' in page

    done = await client.post(f"/admin/inboxes/{sales.id}/test", data={"to": "4242", "csrf_token": csrf})
    assert done.status == 200
    assert f'id="result-{sales.id}"' in (text := await done.text()) and "Test message sent to 4242." in text
    assert [m["text"] for m in fakes["tg2"].sent("sendMessage")] == ["omnirouter test message from Sales bot"]

    fakes["tg2"].fail_next(400, description="Bad Request: chat not found")
    refused = await client.post(f"/admin/inboxes/{sales.id}/test", data={"to": "4243", "csrf_token": csrf})
    assert refused.status == 200 and "Not sent: telegram 400: Bad Request: chat not found" in await refused.text()

    bad = await client.post(f"/admin/inboxes/{sales.id}/test", data={"to": "@someone", "csrf_token": csrf})
    assert bad.status == 400 and f'id="problem-test-{sales.id}"' in (text := await bad.text())
    assert "Type a Telegram chat id (digits)." in text
    bad = await client.post(f"/admin/inboxes/{world['support'].id}/test", data={"to": "020000", "csrf_token": csrf})
    assert bad.status == 400 and "Type a number in E.164" in await bad.text()

    await store.inboxes.update_inbox("default", sales.id, {}, disabled=True)
    off = await client.post(f"/admin/inboxes/{sales.id}/test", data={"to": "4242", "csrf_token": csrf})
    assert off.status == 400 and "The inbox is disabled: enable it first." in await off.text()
    other = await client.post(f"/admin/inboxes/{world['theirs'].id}/test", data={"to": "4242", "csrf_token": csrf})
    assert other.status == 404
    assert len(fakes["tg2"].sent("sendMessage")) == 2  # the one sent and the one refused; nothing since
    await _nothing_stored(store)
    assert [e["details"]["sent"] for e in await _tests_audited(store)] == [True, False]
