"""What the console tells an agent, in Debian's headless Chromium: a conversation assigned to them,
a customer writing in one of theirs, a new conversation queued for their teams — a count in the
title, a sound that really plays (the audio is unlocked by the agent's first gesture) and a desktop
notification; never for what they did themselves, and only what they chose."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient
from playwright.async_api import Browser, Page, expect

from bot.keys import QUEUE, STORE
from bot.services.agents import add_agent
from bot.web.console.live import ConsoleSocket, alert_for
from conversations.agent_models import Role
from tests.web.console.test_console_browser import log_in_page

pytestmark = pytest.mark.browser
RECORD_NOTIFICATIONS = """
window.__shown = [];
const Real = window.Notification;
window.Notification = class extends Real {
  constructor(title, options) { super(title, options); window.__shown.push(title); }
};
"""


async def customer_says(browser: Browser, base: str, text: str, page: Page | None = None) -> Page:
    if page is None:
        page = await (await browser.new_context()).new_page()
        await page.goto(f"{base}/chat")
        await expect(page.locator("#status")).to_have_text("Online")
    await page.fill("#text", text)
    await page.keyboard.press("Enter")
    return page


async def test_an_agent_is_told_what_needs_them_and_only_that(client: TestClient, browser: Browser) -> None:
    base, app = f"http://127.0.0.1:{client.server.port}", client.server.app
    _, password = await add_agent(app[STORE], "default", "ben", name="Ben", role=Role.AGENT)
    await app[QUEUE].set_routing("default", strategy="auto")
    context = await browser.new_context(permissions=["notifications"])
    await context.add_init_script(RECORD_NOTIFICATIONS)
    agent = await log_in_page(await context.new_page(), base, "ben", password)
    await agent.click("#shift-start")  # a gesture, but the form reloads the page: the sound stays locked
    await expect(agent.locator("#presence")).to_contain_text("online")
    await expect(agent.locator("html[data-console=ready]")).to_have_count(1)
    await agent.locator("#queue h2").click()  # the page's first gesture unlocks it

    customer = await customer_says(browser, base, "hello, anyone?")
    await expect(agent).to_have_title("(1) Assigned to you — Console — omnirouter")
    await expect(agent.locator("body")).to_have_attribute("data-sounded", "1")
    assert await agent.evaluate("window.__shown") == ["Assigned to you"]

    await agent.click("#mine .row a")
    await customer_says(browser, base, "are you there?", customer)
    await expect(agent.locator("#history .item--in", has_text="are you there?")).to_have_count(1)
    await expect(agent).to_have_title("(1) New message from a customer — Console — omnirouter")
    await agent.fill("#reply-text", "Yes, here.")
    await agent.click("#send-reply")
    await expect(customer.locator(".msg--out", has_text="Yes, here.")).to_have_count(1)
    await expect(agent.locator("#history .item--agent", has_text="Yes, here.")).to_have_count(1)  # the live update
    assert await agent.title() == "(1) New message from a customer — Console — omnirouter"  # nothing for my own
    assert await agent.evaluate("window.__shown") == ["New message from a customer"]  # since the page opened

    await expect(agent.locator("html[data-console=ready]")).to_have_count(1)  # its script listens
    await agent.click("#show-alerts")
    await agent.uncheck("#alert-customer_message")
    await agent.uncheck("#alert-sound")
    await agent.click("#save-alerts")
    await expect(agent.locator("#alert-customer_message")).not_to_be_checked()
    ben = await app[STORE].agents.agent_by_login("default", "ben")
    assert ben is not None and ben.alerts_off == ["customer_message", "sound"]
    await customer_says(browser, base, "one more thing", customer)
    await expect(agent.locator("#history .item--in", has_text="one more thing")).to_have_count(1)
    await expect(agent).to_have_title("Console — omnirouter")  # turned off

    await app[QUEUE].set_routing("default", strategy="manual")
    await customer_says(browser, base, "a new question")
    await expect(agent).to_have_title("(1) New conversation in the queue — Console — omnirouter")
    assert await agent.evaluate("document.body.dataset.sounded") is None  # sound turned off
    assert await agent.evaluate("window.__shown") == ["New conversation in the queue"]  # since the page reloaded


def test_the_alerts_of_an_event_for_one_agent() -> None:
    ben = ConsoleSocket(None, "default", "ben", None, "en", "", teams=frozenset({"billing"}))  # type: ignore[arg-type]
    assert alert_for({"kind": "assigned", "agent_id": "ben", "by": "ana"}, ben) == "assigned"
    assert alert_for({"kind": "assigned", "agent_id": "ben", "by": "ben"}, ben) is None  # took it himself
    assert alert_for({"kind": "assigned", "agent_id": "ana"}, ben) is None
    assert alert_for({"kind": "message", "alert": "customer_message", "assignee": "ben"}, ben) == "customer_message"
    assert alert_for({"kind": "message", "alert": "customer_message", "assignee": "ana"}, ben) is None
    assert alert_for({"kind": "message", "alert": "queued", "team": "billing"}, ben) == "queued"
    assert alert_for({"kind": "message", "alert": "queued"}, ben) == "queued"  # no team: anyone's
    assert alert_for({"kind": "message", "alert": "queued", "team": "sales"}, ben) is None
    assert alert_for({"kind": "message"}, ben) is None  # an agent's reply
    quiet = ConsoleSocket(None, "default", "ben", None, "en", "", alerts_off=frozenset({"queued"}))  # type: ignore[arg-type]
    assert alert_for({"kind": "message", "alert": "queued"}, quiet) is None
