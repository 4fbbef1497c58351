"""Typing indicators both ways, in Debian's headless Chromium: the agent sees the web chat customer
typing, the customer sees the agent typing until the answer comes."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient
from playwright.async_api import Browser, expect

from bot.keys import STORE
from bot.services.agents import add_agent
from conversations.agent_models import Role
from tests.web.console.test_console_browser import agent_page

pytestmark = pytest.mark.browser


async def test_each_side_sees_the_other_typing(client: TestClient, browser: Browser) -> None:
    base = f"http://127.0.0.1:{client.server.port}"
    _, password = await add_agent(client.server.app[STORE], "default", "ida", name="Ida", role=Role.AGENT)
    customer = await (await browser.new_context()).new_page()
    await customer.goto(f"{base}/chat")
    await expect(customer.locator("#status")).to_have_text("Online")
    await customer.fill("#text", "hello")
    await customer.keyboard.press("Enter")
    await expect(customer.locator(".msg--system")).to_have_count(1)

    agent = await agent_page(browser, base, "ida", password)
    await agent.click("#shift-start")
    await agent.locator("#queue .row button").click()
    await agent.click("#mine .row a")
    await expect(agent.locator("#typing")).to_be_hidden()
    # the conversation's page has its own live socket: a customer's typing before it opens is not
    # kept (it is news for a few seconds only)
    await expect(agent.locator("#reply-text")).to_be_visible()
    await expect(agent.locator("html[data-live=open]")).to_have_count(1)

    await customer.locator("#text").press_sequentially("I have a question about")
    await expect(agent.locator("#typing")).to_have_text("The customer is typing…")
    await expect(agent.locator("#typing")).to_be_hidden(timeout=10_000)  # it fades once they stop

    await expect(customer.locator("#typing")).to_be_hidden()
    await expect(agent.locator("html[data-console=ready]")).to_have_count(1)  # its script listens
    await agent.locator("#reply-text").press_sequentially("Sure, ask away")
    await expect(customer.locator("#typing")).to_be_visible()
    await agent.locator("#reply-text").press("Enter")
    await expect(customer.locator(".msg--out", has_text="Sure, ask away")).to_have_count(1)
    await expect(customer.locator("#typing")).to_be_hidden()  # the answer came
