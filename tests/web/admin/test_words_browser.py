"""What an admin sees, in Debian's headless Chromium under the console's strict CSP: lists that
start with no choice made, stored codes as words, times with their zone, the tab icon, and a page
for a wrong address."""

from __future__ import annotations

import re

import pytest
from aiohttp.test_utils import TestClient
from playwright.async_api import Browser, expect

from bot.keys import STORE
from bot.services.agents import add_agent
from conversations.agent_models import Role
from tests.router.test_queue import customer_writes
from tests.web.admin.test_intents import customer_says
from tests.web.console.test_console_browser import agent_page, csp_violations

pytestmark = pytest.mark.browser


async def test_choice_lists_start_empty_and_an_empty_choice_teaches_nothing(
    training_client: TestClient, browser: Browser
) -> None:
    client = training_client
    base, store = f"http://127.0.0.1:{client.server.port}", client.server.app[STORE]
    first = await customer_says(client, "is shipping to Tallinn possible")
    second = await customer_says(client, "my parcel is lost", visitor="visitor-2")
    _, password = await add_agent(store, "default", "ilze", name="Ilze", role=Role.ADMIN)
    page = await agent_page(browser, base, "ilze", password)
    violations = csp_violations(page)

    await page.goto(f"{base}/admin/intents?intent=delivery")
    move = page.locator("tr.example select[name=intent]").first
    await expect(move).to_have_value("")
    await expect(move.locator("option:checked")).to_have_text("Move to…")
    await page.locator("tr.example button[value=move]").first.click()  # nothing chosen: not sent
    await expect(page.locator("#admin-message")).to_have_count(0)
    await expect(page.locator("tr.example")).to_have_count(4)  # all four still in delivery

    await page.goto(f"{base}/admin/intents/learn")
    row = page.locator(f"#learn-{first}")
    await expect(row.locator("select[name=choice]")).to_have_value("")
    await row.locator("button.assign").click()  # nothing chosen: the row stays
    await expect(row.locator("select[name=choice]")).to_be_visible()
    await row.locator("select[name=choice]").select_option("delivery")
    await row.locator("button.assign").click()
    await expect(row).to_have_text("Learned as delivery: it counts from the next training.")
    other = page.locator(f"#learn-{second}")
    await other.locator("button.oos").click()  # the other buttons need no choice from the list
    await expect(other).to_have_text("Learned as out_of_scope: it counts from the next training.")
    learned = {
        e["message_id"]: e["intent"] for e in await store.training.nlu_examples_of("default") if e.get("message_id")
    }
    assert learned == {first: "delivery", second: "out_of_scope"}
    assert violations == []


async def test_codes_read_as_words_and_a_wrong_address_has_a_page(client: TestClient, browser: Browser) -> None:
    base, store = f"http://127.0.0.1:{client.server.port}", client.server.app[STORE]
    _, password = await add_agent(store, "default", "ilze", name="Ilze", role=Role.ADMIN)
    page = await agent_page(browser, base, "ilze", password)
    violations = csp_violations(page)
    thread_id = await customer_writes(client.server.app, "visitor-1", "Hello?")
    await page.click("button[name=lang][value=lv]")
    row = page.locator(f"#queue .row[data-thread='{thread_id}']")
    await expect(row.locator(".reason")).to_have_text("nav robota modeļa, kas atbildētu")  # no_nlu
    await expect(row.locator(".badge--webchat")).to_have_text("Tīmekļa tērzēšana")
    await row.locator("a").click()
    await expect(page.locator("#thread-head .badge--status-queued")).to_have_text("rindā")
    await expect(page.locator("#history .item--event .item__text")).to_have_text("nav robota modeļa, kas atbildētu")
    await expect(page.locator("#queue .sla").first).to_contain_text(" UTC")
    await page.goto(f"{base}/admin")
    await expect(page.locator("select[name=role]").first.locator("option:checked")).to_have_text("administrators")
    assert not re.search(r"\bsuperadmin\b", await page.locator("main").inner_text())
    icon = await page.evaluate("document.querySelector('link[rel=icon]').href")
    fetched = await page.request.get(icon)
    assert fetched.ok and fetched.headers["content-type"] == "image/svg+xml"

    response = await page.goto(f"{base}/admin/no-such-page")
    assert response is not None and response.status == 404
    await expect(page.locator("main h1")).to_have_text("404")
    await expect(page.locator("main")).to_contain_text("Šajā adresē nav lapas.")
    await page.click("#back")
    await expect(page.locator("#presence")).to_be_visible()  # back in the console
    assert violations == []
