"""The bot's answers edited in Debian's headless Chromium, under the console's strict CSP: an admin
changes an answer and publishes it, the customer gets it at once; a broken domain is refused with
the problem named and the editor left open on the text as typed; the page in Latvian."""

from __future__ import annotations

import pytest
from playwright.async_api import Browser, expect

from bot.keys import STORE
from bot.services.agents import add_agent
from conversations.agent_models import Role
from tests.nlu.conftest import starter_blob  # noqa: F401 (the session's starter model)
from tests.router.dialogue.conftest import Start, bot  # noqa: F401 (the starter bot)
from tests.web.admin.test_answers import ask
from tests.web.console.test_console_browser import agent_page, csp_violations

pytestmark = pytest.mark.browser


async def test_an_admin_changes_an_answer_and_the_customer_gets_it(bot: Start, browser: Browser) -> None:
    client = await bot()
    base, store = f"http://127.0.0.1:{client.server.port}", client.server.app[STORE]
    _, password = await add_agent(store, "default", "ilze", name="Ilze", role=Role.ADMIN)
    page = await agent_page(browser, base, "ilze", password)
    violations = csp_violations(page)

    await page.goto(f"{base}/admin/intents?intent=opening_hours")
    await page.click("#edit-answers")
    await expect(page.locator("#content-home")).to_contain_text("install's files")
    await expect(page.locator("#forms")).to_contain_text("order_status_form")
    answer = page.locator("textarea[name='answer:opening_hours:en']")
    await expect(answer).to_have_value(
        "We are open Monday to Friday 9:00-18:00 and Saturday 10:00-15:00; closed on Sundays."
    )
    await answer.fill("Open every day, 8:00-20:00.")
    await page.click("#publish-answers")
    await expect(page.locator("#admin-message")).to_contain_text("the bot answers with it now")
    await expect(page.locator("#content-home")).to_contain_text("last changed by ilze")
    assert await ask(client, "what are your opening hours?") == "Open every day, 8:00-20:00."

    await page.click("#yaml-editor summary")
    domain = page.locator("#yaml-domain")
    await domain.fill((await domain.input_value()).replace("max_attempts: 3", "max_attempts: 99"))
    await page.click("#publish-yaml")
    await expect(page.locator("#content-error")).to_contain_text("max_attempts must be a whole number from 1 to 20")
    await expect(page.locator("#yaml-editor")).to_have_attribute("open", "")
    assert "max_attempts: 99" in await page.locator("#yaml-domain").input_value()  # as typed, to correct
    assert (await store.training.bot_draft("default") or {})["domain"].count("max_attempts: 3") == 1

    await page.click("button[name=lang][value=lv]")
    await page.goto(f"{base}/admin/intents/answers")
    await expect(page.locator("h2").first).to_have_text("Ko bots atbild")
    await expect(page.locator("#publish-answers")).to_have_text("Saglabāt un publicēt")
    assert violations == []
