"""The website widget's rules over HTTP: the sites an account's admin allows decide which pages
widget.js starts on (``/widget/config``) and which sites may frame the chat (``frame-ancestors``)."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from bot.handlers.webchat.embedding import identity_secret_name
from bot.keys import STORE
from bot.services.agents import add_agent
from bot.web.chat.widget import BadWidget, read_look, site_of
from conversations.agent_models import Role
from tests import factories
from tests.web.admin.test_accounts import REVEALED, Browser

SHOP = "https://shop.example"


async def config(client: TestClient, origin: str | None, account: str = "default") -> tuple[int, dict[str, Any]]:
    headers = {"Origin": origin} if origin else {}
    response = await client.get("/widget/config", params={"account": account}, headers=headers)
    return response.status, await response.json()


async def admin_of(client: TestClient, account: str = "default", role: Role = Role.ADMIN) -> Browser:
    login = f"{role.value}-{account}"
    await add_agent(client.server.app[STORE], account, login, role=role, password="widget-password-1")
    browser = Browser(client)
    assert (await browser.log_in(account, login, "widget-password-1")).status == 303
    return browser


async def test_an_admin_allows_a_site_and_only_that_site_gets_the_widget(client: TestClient) -> None:
    status, body = await config(client, SHOP)
    assert status == 200 and body["allowed"] is False  # no site listed: the router's own origin only
    assert (await config(client, None))[1]["allowed"] is True  # a same-origin request has no Origin
    own = f"http://127.0.0.1:{client.server.port}"
    assert (await config(client, own))[1]["allowed"] is True
    chat = await client.get("/chat/embed", params={"parent": SHOP})
    assert chat.headers["Content-Security-Policy"] == "frame-ancestors 'self'"

    admin = await admin_of(client)
    try:
        form = {
            "sites": f"{SHOP}/any/page\nhttp://localhost:8081",
            "color": "#AA3300",
            "title": "Help",
            "greeting": "Hi",
        }
        status, page = await admin.post("/admin/account/widget", form, page="/admin/account")
        assert status == 303, page
        status, page = await admin.get("/admin/account")
        assert "https://shop.example\nhttp://localhost:8081</textarea>" in page and 'value="#aa3300"' in page
        assert "/widget.js&#34; data-account=&#34;default&#34;" in page  # the snippet to copy
    finally:
        await admin.close()

    response = await client.get("/widget/config", headers={"Origin": SHOP})
    assert response.headers["Access-Control-Allow-Origin"] == SHOP and "Origin" in response.headers["Vary"]
    look = {"allowed": True, "color": "#aa3300", "title": "Help", "greeting": "Hi"}
    assert await response.json() == {**look, "prechat": None, "offline": None}
    assert (await config(client, "https://evil.example"))[1]["allowed"] is False
    assert (await config(client, "http://shop.example"))[1]["allowed"] is False  # another scheme: another site
    embedded = await client.get("/chat/embed", params={"parent": SHOP})
    assert embedded.headers["Content-Security-Policy"] == f"frame-ancestors 'self' {SHOP}"  # that site alone
    evil = await client.get("/chat/embed", params={"parent": "https://evil.example"})
    assert evil.headers["Content-Security-Policy"] == "frame-ancestors 'self'"
    plain = await client.get("/chat")
    assert plain.headers["Content-Security-Policy"] == f"frame-ancestors 'self' {SHOP} http://localhost:8081"
    (entry,) = await factories.audit(client.server.app[STORE], action="settings.widget")
    assert entry.details["sites"] == f"{SHOP},http://localhost:8081"


async def test_each_account_allows_its_own_sites(client: TestClient) -> None:
    store = client.server.app[STORE]
    await factories.account(store, "shop2")
    await store.accounts.set_account_fields("shop2", widget={"sites": [SHOP]})
    assert (await config(client, SHOP, "shop2"))[1]["allowed"] is True
    assert (await config(client, SHOP, "default"))[1]["allowed"] is False
    other = await client.get("/chat/embed", params={"account": "default", "parent": SHOP})
    assert other.headers["Content-Security-Policy"] == "frame-ancestors 'self'"

    admin = await admin_of(client, "shop2")
    try:  # shop2's admin sets shop2's widget, never the default account's
        status, _ = await admin.post("/admin/account/widget", {"sites": "https://b.example"}, page="/admin/account")
        assert status == 303
    finally:
        await admin.close()
    assert (await config(client, "https://b.example", "shop2"))[1]["allowed"] is True
    assert (await config(client, "https://b.example", "default"))[1]["allowed"] is False


async def test_only_an_admin_sets_the_widget_and_a_wrong_site_is_a_400(client: TestClient) -> None:
    agent = await admin_of(client, role=Role.AGENT)
    admin = await admin_of(client)
    try:
        status, _ = await agent.post("/admin/account/widget", {"sites": SHOP})
        assert status == 403
        for sites, color in (("javascript:alert(1)", ""), ("https://user:pw@shop.example", ""), (SHOP, "red")):
            status, page = await admin.post("/admin/account/widget", {"sites": sites, "color": color}, "/admin/account")
            assert status == 400 and 'id="account-error"' in page
    finally:
        await agent.close()
        await admin.close()
    assert (await config(client, SHOP))[1]["allowed"] is False


@pytest.mark.parametrize(
    ("lang", "accept", "words"), [("ru", "", "Открыть чат"), ("", "lv-LV,lv;q=0.9", "Atvērt tērzēšanu")]
)
async def test_the_launcher_speaks_the_page_s_language_else_the_browser_s(
    client: TestClient, lang: str, accept: str, words: str
) -> None:
    response = await client.get("/widget/config", params={"lang": lang}, headers={"Accept-Language": accept})
    assert (await response.json())["words"]["Open chat"] == words


@pytest.mark.parametrize("account", ["nobody", "../x", "a" * 65])
async def test_the_widget_of_an_unknown_account_is_a_404(client: TestClient, account: str) -> None:
    status, body = await config(client, SHOP, account)
    assert status == 404 and body["error"] == "unknown_account"
    assert (await client.get("/chat/embed", params={"account": account})).status == 404


async def test_an_account_stored_before_the_widget_reads_with_no_sites(client: TestClient, raw_database: Any) -> None:
    await raw_database.accounts.insert_one({"_id": "old", "name": "Old shop", "created_at": 0, "channels": {}})
    account = await client.server.app[STORE].accounts.get_account("old")
    assert account is not None and account.widget == {}
    status, body = await config(client, SHOP, "old")
    assert status == 200 and body["allowed"] is False and body["color"] == "#2f6feb"


def test_a_site_is_kept_as_the_browser_names_it() -> None:
    assert site_of("https://Shop.Example/path?q=1") == "https://shop.example"
    assert site_of("https://shop.example:443") == "https://shop.example"
    assert site_of("http://localhost:8081/") == "http://localhost:8081"
    for bad in ("shop.example", "ftp://shop.example", "https://", "https://a b.example", "https://x.example:99999"):
        with pytest.raises(BadWidget):
            site_of(bad)
    assert read_look("", "", "", "").sites == () and read_look(f"{SHOP}, {SHOP}/x", "", "", "").sites == (SHOP,)


async def test_an_admin_makes_the_identity_secret_shown_once_and_an_agent_cannot(client: TestClient) -> None:
    agent = await admin_of(client, role=Role.AGENT)
    admin = await admin_of(client)
    store = client.server.app[STORE]
    try:
        assert (await agent.post("/admin/account/widget/secret", {}))[0] == 403
        assert await store.secrets.read_sealed_secret(identity_secret_name("default")) is None
        status, page = await admin.get("/admin/account")
        assert "no secret: off" in page
        status, page = await admin.post("/admin/account/widget/secret", {}, page="/admin/account")
        assert status == 200 and "Identity verification secret" in page
        shown = REVEALED.search(page).group(1)  # type: ignore[union-attr]
        assert await store.secrets.read_sealed_secret(identity_secret_name("default")) == shown
        status, page = await admin.get("/admin/account")
        assert shown not in page and "secret set" in page  # never shown again
    finally:
        await agent.close()
        await admin.close()


async def test_an_admin_sets_up_the_pre_chat_form_an_agent_cannot_and_the_privacy_notice_is_https(
    client: TestClient,
) -> None:
    agent = await admin_of(client, role=Role.AGENT)
    admin = await admin_of(client)
    form = {"prechat": "on", "prechat_email": "on", "prechat_consent": "on", "privacy_url": "https://shop.example/p"}
    try:
        assert (await agent.post("/admin/account/widget", form))[0] == 403
        assert (await config(client, None))[1]["prechat"] is None
        for url in ("http://shop.example/p", "javascript:alert(1)", "https://u:pw@shop.example/", ""):
            status, page = await admin.post("/admin/account/widget", {**form, "privacy_url": url}, "/admin/account")
            assert status == 400 and "The privacy notice needs an https address" in page, url
        assert (await config(client, None))[1]["prechat"] is None
        status, page = await admin.post("/admin/account/widget", form, page="/admin/account")
        assert status == 303, page
        status, page = await admin.get("/admin/account")
        assert 'name="prechat_email" checked' in page and 'value="https://shop.example/p"' in page
    finally:
        await agent.close()
        await admin.close()
    expected = {"fields": ["email"], "consent": True, "privacy_url": "https://shop.example/p"}
    assert (await config(client, None))[1]["prechat"] == expected
    account = await client.server.app[STORE].accounts.get_account("default")
    assert account is not None and account.widget["prechat"]["enabled"] is True
