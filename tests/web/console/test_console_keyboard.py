"""The console from the keyboard, in Debian's headless Chromium: "?" shows the shortcuts; j/k move
between conversations, t takes one, r goes to the reply, Enter sends it and Shift+Enter starts a
new line (or, turned off in the help and remembered by the browser, Ctrl+Enter sends), e resolves."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient
from playwright.async_api import Browser, Page, expect

from bot.keys import PIPELINE, STORE
from bot.services.agents import add_agent
from conversations.agent_models import Role
from conversations.traffic import Identity, Inbound
from tests.web.console.test_console_browser import agent_page

pytestmark = pytest.mark.browser


async def ready(page: Page) -> None:
    """The console's script runs (it is deferred): keys pressed before it would do nothing."""
    await expect(page.locator("html[data-console=ready]")).to_have_count(1)


async def test_an_agent_works_from_the_keyboard(client: TestClient, browser: Browser) -> None:
    base, app = f"http://127.0.0.1:{client.server.port}", client.server.app
    for n in range(2):
        inbound = Inbound("default", "webchat", f"k-{n}", Identity("webchat", f"v-{n}"), f"question number {n}")
        _, task = await app[PIPELINE].receive(inbound)
        assert task is not None
        await task
    _, password = await add_agent(app[STORE], "default", "kim", name="Kim", role=Role.AGENT)
    page = await agent_page(browser, base, "kim", password)
    async with page.expect_navigation():  # a form posted: keys go to the page that comes back
        await page.click("#shift-start")
    await expect(page.locator("#presence")).to_contain_text("online")
    await expect(page.locator("#queue .row")).to_have_count(2)
    await ready(page)

    await page.keyboard.press("?")
    await expect(page.locator("#shortcuts")).to_be_visible()
    await expect(page.locator("#shortcuts")).to_contain_text("next / previous conversation")
    await page.keyboard.press("Escape")
    await expect(page.locator("#shortcuts")).to_be_hidden()

    await page.keyboard.press("j")  # the first conversation of the lists
    await expect(page.locator(".thread-head")).to_be_visible(timeout=15_000)
    first = page.url
    await ready(page)
    await page.keyboard.press("j")
    await expect(page).not_to_have_url(first)
    await ready(page)
    await page.keyboard.press("k")
    await expect(page).to_have_url(first)

    await ready(page)
    await page.keyboard.press("t")
    await expect(page.locator("#reply-text")).to_be_visible()
    await ready(page)
    await page.keyboard.press("r")
    await expect(page.locator("#reply-text")).to_be_focused()
    await page.keyboard.type("Hello,")
    await page.keyboard.press("Shift+Enter")
    await page.keyboard.type("how can I help?")
    await expect(page.locator("#reply-text")).to_have_value("Hello,\nhow can I help?")
    await page.keyboard.press("Enter")
    await expect(page.locator("#history .item--agent .item__text")).to_have_text("Hello,\nhow can I help?")
    await expect(page.locator("#reply-text")).to_have_value("")

    await page.click("#show-shortcuts")
    await page.uncheck("#enter-sends")
    await page.click("#shortcuts-close")
    await page.reload()  # remembered by this browser
    await ready(page)
    await page.locator("#reply-text").fill("one")
    await page.locator("#reply-text").press("Enter")
    await expect(page.locator("#reply-text")).to_have_value("one\n")
    await page.locator("#reply-text").press("Control+Enter")
    await expect(page.locator("#history .item--agent")).to_have_count(2)

    await ready(page)
    await page.locator("#history").click()  # out of the reply box
    await page.keyboard.press("e")
    await expect(page).to_have_url(f"{base}/console")
    await expect(page.locator("#mine .row")).to_have_count(0)
    assert [t.status for t in await app[STORE].threads.list_threads("default", limit=5, status="resolved")] == [
        "resolved"
    ]
