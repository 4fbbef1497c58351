"""An inbox's greeting on the Inboxes page and in the API, and the account's on the Admin page's
Routing form: kept as typed, shown back, emptied; one line of at most 300 characters, else a clear
400 and nothing changes; another account's admin cannot touch it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from bot.keys import QUEUE, STORE
from bot.web.api.kit import issue_token
from tests.conftest import make_settings
from tests.fakes import reachable, running
from tests.fakes.telegram_api import FakeBotAPI
from tests.web.admin.inboxes_kit import add_inbox, article, inbox_form, signed_in, two_accounts
from tests.web.admin.test_accounts import Browser

BOT_TOKEN = "7364001122:AAH-greeting-bot-token"
HELLO = "Hi, this is the corner shop's bot."


@pytest.fixture
async def telegram() -> AsyncIterator[FakeBotAPI]:
    fake = FakeBotAPI(token=BOT_TOKEN)
    async with running(fake):
        yield fake


@pytest.fixture
async def admin(embedded: Any, db_name: str, start_client: Any, telegram: FakeBotAPI) -> AsyncIterator[Browser]:
    settings = make_settings(embedded.uri, db_name, egress=reachable([telegram]))
    browser = await signed_in(await two_accounts(await start_client(settings)))
    yield browser
    await browser.close()


async def test_the_form_keeps_shows_and_empties_an_inboxs_greeting(admin: Browser, telegram: FakeBotAPI) -> None:
    form = inbox_form("telegram", "Sales bot", telegram.url, token=BOT_TOKEN, webhook_secret="s1", greeting=HELLO)
    inbox_id = await add_inbox(admin, form)
    store = admin.app[STORE]  # type: ignore[attr-defined]
    assert (await store.inboxes.get_inbox(inbox_id)).config["greeting"] == HELLO
    page = (await admin.get("/admin/inboxes"))[1]
    assert 'name="greeting" value="Hi, this is the corner shop&#39;s bot."' in article(page, inbox_id)
    assert "sent once as the first message of every new conversation in this inbox" in page

    edit = {"name": "Sales bot", "token": "", "webhook_secret": "", "api_base": telegram.url}
    for bad in ("x" * 301, "two\nlines"):
        status, page = await admin.post(f"/admin/inboxes/{inbox_id}", {**edit, "greeting": bad}, page="/admin/inboxes")
        assert status == 400 and "greeting has a wrong format." in page, bad
    assert (await store.inboxes.get_inbox(inbox_id)).config["greeting"] == HELLO
    status, _ = await admin.post(f"/admin/inboxes/{inbox_id}", {**edit, "greeting": ""}, page="/admin/inboxes")
    assert status == 303 and (await store.inboxes.get_inbox(inbox_id)).config["greeting"] == ""
    assert "greeting" not in await store.inboxes.inbox_routing(inbox_id)


async def test_the_api_refuses_a_greeting_that_is_not_one_short_line(admin: Browser, telegram: FakeBotAPI) -> None:
    client, store = admin.client, admin.app[STORE]  # type: ignore[attr-defined]
    shop = {"Authorization": f"Bearer {await issue_token(store, 'shop', 'ops', ['read', 'write'], 'test')}"}
    rival = {"Authorization": f"Bearer {await issue_token(store, 'rival', 'ops', ['read', 'write'], 'test')}"}
    settings = {"token": BOT_TOKEN, "webhook_secret": "s1", "api_base": telegram.url}
    for bad in ("x" * 301, "two\nlines", "tab\there"):
        body = {"channel": "telegram", "name": "Bot", "settings": {**settings, "greeting": bad}}
        answer = await client.post("/api/accounts/shop/inboxes", json=body, headers=shop)
        assert answer.status == 400 and "greeting" in (await answer.json())["detail"], bad
        answer = await client.patch("/api/accounts/shop", json={"greeting": bad}, headers=shop)
        assert answer.status == 400, bad
    body = {"channel": "telegram", "name": "Bot", "settings": {**settings, "greeting": HELLO}}
    made = await (await client.post("/api/accounts/shop/inboxes", json=body, headers=shop)).json()
    assert made["settings"]["greeting"] == HELLO
    url = f"/api/accounts/shop/inboxes/{made['id']}"
    answer = await client.patch(url, json={"settings": {"greeting": "Hello again."}}, headers=shop)
    assert answer.status == 200 and (await answer.json())["settings"]["greeting"] == "Hello again."
    # another account's token reaches neither the inbox nor the account's greeting
    assert (await client.patch(url, json={"settings": {"greeting": "Ours now."}}, headers=rival)).status == 404
    assert (await client.patch("/api/accounts/shop", json={"greeting": "Ours now."}, headers=rival)).status in (
        403,
        404,
    )
    assert (await store.inboxes.get_inbox(made["id"])).config["greeting"] == "Hello again."
    assert (await admin.app[QUEUE].routing("shop")).greeting == ""  # type: ignore[attr-defined]


async def test_the_accounts_greeting_is_saved_on_the_routing_form_as_one_line(admin: Browser) -> None:
    form = {"strategy": "manual", "business_hours": "", "timezone": "UTC", "greeting": f" {HELLO}\r\nWelcome! "}
    status, _ = await admin.post("/admin/routing", form, page="/admin")
    assert status == 303
    assert (await admin.app[QUEUE].routing("shop")).greeting == f"{HELLO} Welcome!"  # type: ignore[attr-defined]
    assert (await admin.app[QUEUE].routing("rival")).greeting == ""  # type: ignore[attr-defined]
    page = (await admin.get("/admin"))[1]
    assert 'name="greeting" value="Hi, this is the corner shop&#39;s bot. Welcome!"' in page
