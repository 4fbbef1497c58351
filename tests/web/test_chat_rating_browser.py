"""The rating question in the web chat page (Debian's headless Chromium, driven by Playwright):
the customer taps a button and the resolved conversation has its rating."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient
from playwright.async_api import Browser, expect

from bot.keys import STORE
from tests.handlers.test_satisfaction import ask_on, rated, resolve_only_thread
from tests.router.test_inbound import wait_for

pytestmark = pytest.mark.browser  # the `browser` fixture is in tests/web/conftest.py


async def test_the_customer_taps_a_rating_button_and_may_add_a_comment(client: TestClient, browser: Browser) -> None:
    await ask_on(client)
    context = await browser.new_context()
    page = await context.new_page()
    await page.goto(f"http://127.0.0.1:{client.server.port}/chat")
    await expect(page.locator("#status")).to_have_text("Online")
    await page.fill("#text", "my parcel is late")
    await page.keyboard.press("Enter")
    await expect(page.locator(".msg--system")).to_contain_text("A member of our team will reply")

    thread = await resolve_only_thread(client, "webchat")
    buttons = page.locator(".msg__options button")
    await expect(buttons).to_have_text(["1", "2", "3", "4", "5"])
    await buttons.nth(4).click()
    await expect(page.locator(".msg--system").last).to_contain_text("Thank you for your rating")
    await wait_for(lambda: rated(client, thread, 5))
    await page.fill("#text", "Solved in minutes")
    await page.keyboard.press("Enter")

    async def commented() -> bool:
        [ask] = await client.server.app[STORE].satisfaction.of_threads("default", [thread.id])
        return ask.comment == "Solved in minutes"

    await wait_for(commented)
    await context.close()
