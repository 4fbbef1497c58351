"""The agent console in Debian's headless Chromium: a customer on the web chat, an agent in the
console, and everything between them live."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient
from playwright.async_api import Browser, Page, expect

from bot.keys import QUEUE, STORE
from bot.services.agents import add_agent
from conversations.agent_models import Role

pytestmark = pytest.mark.browser

HOSTILE = "<script>alert('x')</script> and <img src=x onerror=alert(1)> see http://evil.example"


async def agent_page(browser: Browser, base: str, login: str, password: str) -> Page:
    page = await (await browser.new_context()).new_page()
    page.on("dialog", lambda dialog: pytest.fail(f"customer content ran script: {dialog.message}"))
    return await log_in_page(page, base, login, password)


def csp_violations(page: Page) -> list[str]:
    """The console messages in which the browser reports a Content-Security-Policy violation;
    the list fills as the page runs."""
    found: list[str] = []
    page.on(
        "console", lambda message: found.append(message.text) if "Content Security Policy" in message.text else None
    )
    return found


async def log_in_page(page: Page, base: str, login: str, password: str) -> Page:
    """Log in through the login form; returns the console page."""
    await page.goto(f"{base}/login")
    await page.fill("input[name=login]", login)
    await page.fill("input[name=password]", password)
    await page.click("button[type=submit]")
    await expect(page.locator("#presence")).to_be_visible()
    return page


async def test_an_agent_takes_a_conversation_and_talks_with_the_customer_live(
    client: TestClient, browser: Browser
) -> None:
    base = f"http://127.0.0.1:{client.server.port}"
    _, password = await add_agent(client.server.app[STORE], "default", "ava", name="Ava", role=Role.AGENT)

    customer = await (await browser.new_context()).new_page()
    await customer.goto(f"{base}/chat")
    await expect(customer.locator("#status")).to_have_text("Online")
    await customer.fill("#text", HOSTILE)
    await customer.keyboard.press("Enter")
    await expect(customer.locator(".msg--system")).to_have_count(1)

    agent = await agent_page(browser, base, "ava", password)
    await agent.click("#shift-start")
    await expect(agent.locator("#presence")).to_contain_text("online")
    row = agent.locator("#queue .row")
    await expect(row).to_have_count(1)
    await row.locator("button").click()  # take it
    await expect(agent.locator("#mine .row")).to_have_count(1)
    await expect(agent.locator("#queue .row")).to_have_count(0)

    shown = agent.locator("#history .item--in .item__text")
    await expect(shown).to_have_text(HOSTILE)  # the markup is text
    assert await agent.locator("#history img, #history script, #history a").count() == 0

    await agent.fill("#reply-text", "Hello! I am Ava, how can I help?")
    await agent.click("#send-reply")
    await expect(customer.locator(".msg--out", has_text="I am Ava")).to_have_count(1)
    await expect(agent.locator("#reply-text")).to_have_value("")  # the form was swapped in place
    reply = agent.locator("#history .item--agent", has_text="I am Ava")
    await expect(reply.locator(".delivery")).to_have_text("sent")

    await customer.fill("#text", "My order 1234 never arrived")
    await customer.keyboard.press("Enter")
    await expect(agent.locator("#history .item--in", has_text="order 1234")).to_have_count(1)  # no reload

    forged = await agent.request.post(f"{base}/console/next", form={"x": "1"})
    assert forged.status == 403 and "CSRF" in await forged.text()
    admin_page = await agent.goto(f"{base}/admin")
    assert admin_page is not None and admin_page.status == 403
    await expect(agent.locator("main")).to_contain_text("Only admins")


async def test_a_new_assignment_rings_and_marks_the_title(client: TestClient, browser: Browser) -> None:
    base = f"http://127.0.0.1:{client.server.port}"
    app = client.server.app
    _, password = await add_agent(app[STORE], "default", "ben", name="Ben", role=Role.AGENT)
    await app[QUEUE].set_routing("default", strategy="auto")
    agent = await agent_page(browser, base, "ben", password)
    await agent.click("#shift-start")
    await expect(agent.locator("#presence")).to_contain_text("online")

    customer = await (await browser.new_context()).new_page()
    await customer.goto(f"{base}/chat")
    await customer.fill("#text", "hello, anyone?")
    await customer.keyboard.press("Enter")

    await expect(agent.locator("#mine .row")).to_have_count(1)
    await expect(agent).to_have_title("(1) Assigned to you — Console — omnirouter")


async def test_the_console_speaks_latvian_and_russian(client: TestClient, browser: Browser) -> None:
    base = f"http://127.0.0.1:{client.server.port}"
    _, password = await add_agent(client.server.app[STORE], "default", "liga", role=Role.ADMIN)
    page = await agent_page(browser, base, "liga", password)
    await page.click("button[name=lang][value=lv]")
    await expect(page.locator("#shift-start")).to_have_text("Sākt maiņu")
    await page.goto(f"{base}/admin")
    await expect(page.locator("#agents h2")).to_have_text("Aģenti")
    await page.click("button[name=lang][value=ru]")
    await page.goto(f"{base}/console")
    await expect(page.locator("#shift-start")).to_have_text("Начать смену")
    await page.goto(f"{base}/admin")
    await expect(page.locator("#agents h2")).to_have_text("Агенты")


async def test_a_live_update_keeps_what_the_agent_was_filling_in(client: TestClient, browser: Browser) -> None:
    base = f"http://127.0.0.1:{client.server.port}"
    store = client.server.app[STORE]
    await add_agent(store, "default", "vera", name="Vera", role=Role.AGENT)
    _, password = await add_agent(store, "default", "ola", name="Ola", role=Role.ADMIN)
    customer = await (await browser.new_context()).new_page()
    await customer.goto(f"{base}/chat")
    await customer.fill("#text", "hello, anyone?")
    await customer.keyboard.press("Enter")
    await expect(customer.locator(".msg--system")).to_have_count(1)

    agent = await agent_page(browser, base, "ola", password)
    await agent.locator("#queue .row a").click()
    head = agent.locator("#thread-head")
    option = head.locator("form.transfer select[name=agent] option", has_text="Vera")
    await agent.select_option("form.transfer select[name=agent]", label=await option.text_content() or "")
    await agent.fill("form.transfer input[name=note]", "VIP customer")
    await agent.focus("form.transfer input[name=note]")
    await head.evaluate("el => { el.dataset.before = '1'; }")  # gone once the head is swapped

    await customer.fill("#text", "are you there?")
    await customer.keyboard.press("Enter")
    await expect(agent.locator("#history .item--in", has_text="are you there?")).to_have_count(1)
    await expect(head).not_to_have_attribute("data-before", "1")  # the head was re-rendered...
    await expect(agent.locator("form.transfer input[name=note]")).to_have_value("VIP customer")  # ...and kept
    assert await agent.locator("form.transfer select[name=agent] option:checked").text_content() == (
        await option.text_content()
    )
    await expect(agent.locator("form.transfer input[name=note]")).to_be_focused()
