"""A campaign created in the console, in Debian's headless Chromium: its report follows the sending
live (no reload) until every contact is handled."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from playwright.async_api import Browser, expect

from bot.keys import STORE
from bot.services.agents import add_agent
from conversations.agent_models import Role
from conversations.models import utcnow
from conversations.traffic import Identity
from tests.conftest import make_settings
from tests.web.admin.test_answers import PASSWORD
from tests.web.console.test_console_browser import agent_page

pytestmark = pytest.mark.browser
CONTACTS = 450  # three pages of the sender's audience walk
RATE = 50  # messages a second: the campaign takes about 9 s


async def test_a_campaigns_report_follows_its_sending_live(
    embedded: Any, db_name: str, start_client: Any, browser: Browser
) -> None:
    settings = make_settings(embedded.uri, db_name, campaigns={"rate": RATE, "poll_interval": 0.1})
    client = await start_client(settings)
    store = client.server.app[STORE]
    for start in range(0, CONTACTS, 50):
        await asyncio.gather(
            *(
                store.contacts.find_or_create_contact("default", Identity("webchat", f"v-{n}"), None, utcnow())
                for n in range(start, start + 50)
            )
        )
    await add_agent(store, "default", "ada", name="Ada", role=Role.ADMIN, password=PASSWORD)
    page = await agent_page(browser, f"http://127.0.0.1:{client.server.port}", "ada", PASSWORD)

    await page.goto(f"http://127.0.0.1:{client.server.port}/admin/campaigns")
    await page.fill("input[name=name]", "Spring sale")
    await page.select_option("select[name=channel]", "webchat")
    await page.fill("textarea[name=text]", "20% off this week")
    await page.get_by_role("button", name="Create campaign").click()
    progress = page.locator("#campaign-progress")
    await expect(progress).to_have_attribute("max", str(CONTACTS))
    first = int(await progress.get_attribute("value") or 0)
    assert first < CONTACTS  # the page opened while the campaign was still sending
    await page.evaluate("() => { window.stillThisPage = true; }")

    await expect(progress).to_have_attribute("value", str(CONTACTS), timeout=60_000)
    await expect(page.locator("#kpi-queued")).to_have_text(str(CONTACTS))
    assert await page.evaluate("() => window.stillThisPage === true")  # updated in place, not reloaded
    await page.context.close()
