"""What the inboxes tests share: a router with two accounts ("shop" and "rival", each with its
admin), the shop admin's browser, the inboxes page's parts, and the sign-in to that page in
headless Chromium. The fakes are started and let through the egress guard by tests/fakes/."""

from __future__ import annotations

import re

import aiohttp
from aiohttp.test_utils import TestClient
from playwright.async_api import Browser as Chromium
from playwright.async_api import Page
from yarl import URL

from bot.keys import STORE
from bot.services.accounts import create_account
from tests.web.admin.test_accounts import Browser

PASSWORD = "correct horse battery"


async def two_accounts(client: TestClient) -> TestClient:
    """The accounts "shop" (admin "owner") and "rival" (admin "boss") on ``client``'s router."""
    await create_account(client.server.app[STORE], "shop", "Corner Shop", "owner", password=PASSWORD)
    await create_account(client.server.app[STORE], "rival", "Rival", "boss", password=PASSWORD)
    return client


class SecureBrowser(Browser):
    """A browser for a router whose public address is https (its session cookie is ``Secure``)."""

    def __init__(self, client: TestClient) -> None:
        self.base = f"http://127.0.0.1:{client.server.port}"
        self.session = aiohttp.ClientSession(
            cookie_jar=aiohttp.CookieJar(unsafe=True, treat_as_secure_origin=[URL(self.base)])
        )


async def signed_in(client: TestClient, account: str = "shop", login: str = "owner") -> SecureBrowser:
    """An admin's browser, signed in; ``.app`` and ``.client`` name the router it talks to."""
    browser = SecureBrowser(client)
    assert (await browser.log_in(account, login, PASSWORD)).status == 303
    browser.app = client.server.app  # type: ignore[attr-defined]
    browser.client = client  # type: ignore[attr-defined]
    return browser


def inbox_form(channel: str, name: str, api_base: str, **fields: str) -> dict[str, str]:
    """The page's form adding a ``channel`` inbox named ``name`` on the provider at ``api_base``."""
    return {"channel": channel, "name": name, **fields, "api_base": api_base}


async def add_inbox(browser: Browser, form: dict[str, str], account: str = "shop") -> str:
    """Add an inbox through the page's form; its id."""
    status, body = await browser.post("/admin/inboxes", form, page="/admin/inboxes")
    assert status == 303, body
    store = browser.app[STORE]  # type: ignore[attr-defined]
    return str(next(i for i in await store.inboxes.list_inboxes(account) if i.name == form["name"]).id)


def article(page: str, inbox_id: str) -> str:
    """The part of the inboxes page that shows one inbox."""
    found = re.search(rf'<article class="inbox" id="inbox-{inbox_id}">(.*?)</article>', page, re.S)
    assert found, f"no inbox {inbox_id} on the page"
    return found.group(1)


async def inboxes_page(chromium: Chromium, client: TestClient, account: str = "shop", login: str = "owner") -> Page:
    """A new Chromium page signed in as the account's admin, on the inboxes page."""
    page = await (await chromium.new_context()).new_page()
    await page.goto(f"http://127.0.0.1:{client.server.port}/login?account={account}")
    await page.fill("input[name=login]", login)
    await page.fill("input[name=password]", PASSWORD)
    await page.click("button[type=submit]")
    await page.click("#nav-inboxes")
    return page
