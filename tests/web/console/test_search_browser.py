"""Search in the console, in Debian's headless Chromium: the matching words marked in the
results (hostile text shown as text), contacts found by their address, an empty search says how
to search, nothing found says so, and nothing of another account shows."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient
from playwright.async_api import Browser, expect

from bot.keys import PIPELINE, STORE
from bot.services.accounts import create_account
from bot.services.agents import add_agent
from conversations.agent_models import Role
from conversations.traffic import Identity, Inbound
from tests.web.console.test_console_browser import agent_page

pytestmark = pytest.mark.browser


async def customer(client: TestClient, account: str, visitor: str, text: str) -> None:
    inbound = Inbound(account, "webchat", f"{visitor}:{text[:20]}", Identity("webchat", visitor), text)
    _, task = await client.server.app[PIPELINE].receive(inbound)
    if task is not None:
        await task


async def test_an_agent_searches_messages_and_contacts(client: TestClient, browser: Browser) -> None:
    base, store = f"http://127.0.0.1:{client.server.port}", client.server.app[STORE]
    await create_account(store, "rival", "Rival", "rival-admin", password="rival account pass")
    await customer(client, "default", "anna-lv", "Mans pasūtījums A-10234 nav pienācis <img src=x onerror=alert(1)>")
    await customer(client, "default", "ivan-ru", "Позвоните мне: +371 2000 0000")
    await customer(client, "rival", "eve", "pasūtījums A-10234 of another business")
    _, password = await add_agent(store, "default", "ava", name="Ava", role=Role.AGENT)
    page = await agent_page(browser, base, "ava", password)

    await page.click("#nav-search")
    await expect(page.locator("#search-hint")).to_be_visible()
    await page.fill("#search-q", "pasutijums a-10234")
    await page.click("#search-go")
    results = page.locator("#message-results .result")
    await expect(results).to_have_count(1)  # not the other account's
    await expect(results.locator("mark")).to_have_text(["pasūtījums", "A-10234"])
    await expect(results.locator(".result__text")).to_contain_text("<img src=x onerror=alert(1)>")
    assert await results.locator("img").count() == 0
    await results.locator("a.result__link").click()
    await expect(page.locator("#history")).to_contain_text("Mans pasūtījums A-10234")

    await page.goto(f"{base}/console/search?q=20000000")  # a phone number by its local digits
    await expect(page.locator("#message-results .result")).to_have_count(1)
    await expect(page.locator("#message-results mark")).to_have_text("+371 2000 0000")
    await page.goto(f"{base}/console/search?q=ivan-ru")
    await expect(page.locator("#contact-results .result")).to_have_count(1)
    await page.goto(f"{base}/console/search?q=nonexistentword")
    await expect(page.locator("#no-results")).to_be_visible()
    too_long = await page.request.get(f"{base}/console/search?q={'x' * 201}")
    assert too_long.status == 400
