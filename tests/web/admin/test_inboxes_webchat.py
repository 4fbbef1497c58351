"""Web chat inboxes on the inboxes page and through the API: an account's admin adds a widget,
sees its chat page and the tag that embeds it, edits and disables it; another account's admin can
do none of it."""

from __future__ import annotations

import html
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from bot.keys import STORE
from tests import factories
from tests.conftest import TEST_API_TOKEN, make_settings
from tests.web.admin.inboxes_kit import add_inbox, article, signed_in, two_accounts
from tests.web.admin.test_accounts import Browser

PUBLIC = "https://chat.example"
INSTALL = {"Authorization": f"Bearer {TEST_API_TOKEN}"}


@pytest.fixture
async def router(embedded: Any, db_name: str, start_client: Any) -> TestClient:
    settings = make_settings(embedded.uri, db_name, server={"public_url": PUBLIC})
    return await two_accounts(await start_client(settings))


@pytest.fixture
async def admin(router: TestClient) -> AsyncIterator[Browser]:
    browser = await signed_in(router)
    yield browser
    await browser.close()


def _webchat(name: str = "Shop chat", **fields: str) -> dict[str, str]:
    return {"channel": "webchat", "name": name, "greeting": "", "color": "", "sites": "", **fields}


async def test_an_admin_adds_a_web_chat_and_is_given_its_page_and_snippet(admin: Browser) -> None:
    status, page = await admin.get("/admin/inboxes")
    assert status == 200 and 'id="add-webchat"' in page
    form = _webchat(greeting="Welcome to the shop", sites="https://shop.example https://www.shop.example")
    inbox_id = await add_inbox(admin, form)
    inbox = await admin.app[STORE].inboxes.get_inbox(inbox_id)  # type: ignore[attr-defined]
    assert inbox.channel == "webchat" and inbox.config["greeting"] == "Welcome to the shop"
    assert inbox.config["sites"] == "https://shop.example https://www.shop.example" and "color" not in inbox.config
    row = article((await admin.get("/admin/inboxes?saved=added"))[1], inbox_id)
    assert "Shop chat" in row and 'data-state="enabled"' in row
    assert f'value="{PUBLIC}/chat?account=shop&amp;inbox={inbox_id}"' in row
    snippet = f'<script src="{PUBLIC}/widget.js" data-account="shop" data-inbox="{inbox_id}" async></script>'
    assert snippet in html.unescape(row) and "<script" not in row  # shown, never run
    assert "send-test" not in row and "/check" not in row  # nothing to ask a provider
    status, _ = await admin.post(f"/admin/inboxes/{inbox_id}/test", {"to": "+37120000000"}, page="/admin/inboxes")
    assert status == 404  # a crafted test message for a web chat: no such thing, never a 500
    [entry] = await factories.audit(admin.app[STORE], "shop", action="inbox.create")  # type: ignore[attr-defined]
    assert entry.target == inbox_id


async def test_a_web_chat_is_edited_and_disabled_and_a_bad_site_is_refused(admin: Browser) -> None:
    store = admin.app[STORE]  # type: ignore[attr-defined]
    inbox_id = await add_inbox(admin, _webchat(greeting="Hi"))
    form = {"name": "Support chat", "greeting": "How can we help?", "color": "#aa0000", "sites": "https://help.example"}
    status, body = await admin.post(f"/admin/inboxes/{inbox_id}", form, page="/admin/inboxes")
    assert status == 303, body
    inbox = await store.inboxes.get_inbox(inbox_id)
    assert inbox.name == "Support chat" and inbox.config["color"] == "#aa0000"
    assert inbox.config["sites"] == "https://help.example"
    for field, bad in (
        ("sites", "https://help.example/path"),
        ("sites", "javascript:alert(1)"),
        ("sites", "https://help.example:443"),  # a browser's Origin never names the default port
        ("sites", "https://a..b"),
        ("color", "red"),
    ):
        status, page = await admin.post(f"/admin/inboxes/{inbox_id}", {**form, field: bad}, page="/admin/inboxes")
        assert status == 400 and f"{field} has a wrong format." in page, (field, bad)
    assert (await store.inboxes.get_inbox(inbox_id)).config["sites"] == "https://help.example"

    client = admin.client  # type: ignore[attr-defined]
    params = {"account": "shop", "inbox": inbox_id}
    assert (await client.get("/widget/config", params=params)).status == 200
    status, _ = await admin.post(f"/admin/inboxes/{inbox_id}/state", {"action": "disable"}, page="/admin/inboxes")
    assert status == 303 and (await store.inboxes.get_inbox(inbox_id)).disabled
    assert (await client.get("/widget/config", params=params)).status == 404
    assert (await client.get("/chat", params=params)).status == 404


async def test_another_accounts_admin_cannot_touch_a_web_chat(admin: Browser, router: TestClient) -> None:
    inbox_id = await add_inbox(admin, _webchat())
    rival = await signed_in(router, "rival", "boss")
    try:
        status, _ = await rival.post(f"/admin/inboxes/{inbox_id}", _webchat("Mine now"), page="/admin/inboxes")
        assert status == 404
        status, _ = await rival.post(f"/admin/inboxes/{inbox_id}/state", {"action": "disable"}, page="/admin/inboxes")
        assert status == 404
        assert inbox_id not in (await rival.get("/admin/inboxes"))[1]
    finally:
        await rival.close()
    inbox = await router.server.app[STORE].inboxes.get_inbox(inbox_id)
    assert inbox.name == "Shop chat" and not inbox.disabled


async def test_the_api_adds_a_web_chat_with_its_chat_page_and_snippet(router: TestClient) -> None:
    body = {"channel": "webchat", "name": "Shop chat", "settings": {"greeting": "Hello", "sites": "https://a.example"}}
    made = await router.post("/api/accounts/shop/inboxes", json=body, headers=INSTALL)
    assert made.status == 201, await made.text()
    shown = await made.json()
    assert shown["webhook_url"] == f"{PUBLIC}/chat?account=shop&inbox={shown['id']}"
    assert f'data-inbox="{shown["id"]}"' in shown["snippet"] and shown["settings"]["greeting"] == "Hello"
    bad = {**body, "settings": {"sites": "not a site"}}
    refused = await router.post("/api/accounts/shop/inboxes", json=bad, headers=INSTALL)
    assert refused.status == 400
    changed = await router.patch(
        f"/api/accounts/shop/inboxes/{shown['id']}",
        json={"disabled": True, "settings": {"color": "#123456"}},
        headers=INSTALL,
    )
    assert changed.status == 200 and (await changed.json())["disabled"] is True
    elsewhere = await router.patch(f"/api/accounts/rival/inboxes/{shown['id']}", json={"name": "x"}, headers=INSTALL)
    assert elsewhere.status == 404
    test = await router.post(
        f"/api/accounts/shop/inboxes/{shown['id']}/test", json={"to": "+37120000000"}, headers=INSTALL
    )
    assert test.status == 422


async def test_an_inbox_name_is_one_line_in_the_api_and_the_form(admin: Browser, router: TestClient) -> None:
    """A name is a chat's title and a test mail's sender name and subject: a line break in it is
    refused (400), in the API (adding and renaming) and on the Inboxes page, and nothing is stored."""
    body = {"channel": "webchat", "name": "Shop\r\nBcc: all@x.example", "settings": {}}
    refused = await router.post("/api/accounts/shop/inboxes", json=body, headers=INSTALL)
    assert refused.status == 400 and "name" in (await refused.json())["detail"]
    made = await router.post("/api/accounts/shop/inboxes", json={**body, "name": "Shop chat"}, headers=INSTALL)
    inbox_id = (await made.json())["id"]
    renamed = await router.patch(f"/api/accounts/shop/inboxes/{inbox_id}", json={"name": "A\nB"}, headers=INSTALL)
    assert renamed.status == 400
    status, page = await admin.post("/admin/inboxes", _webchat(name="Shop\nchat"), page="/admin/inboxes")
    assert status == 400 and "one line: no line breaks" in page
    assert [i.name for i in await admin.app[STORE].inboxes.list_inboxes("shop")] == ["Shop chat"]  # type: ignore[attr-defined]
