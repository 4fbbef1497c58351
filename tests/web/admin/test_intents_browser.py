"""Intent training in Debian's headless Chromium, under the console's strict CSP: an admin adds
an example, teaches the bot from a conversation in one click, trains (the progress shows, then
the cross-validated figures), activates the new version and tries a sentence; then in Latvian."""

from __future__ import annotations

import re

import pytest
from aiohttp.test_utils import TestClient
from playwright.async_api import Browser, expect

from bot.keys import STORE
from bot.services.agents import add_agent
from conversations.agent_models import Role
from tests.web.admin.test_intents import customer_says
from tests.web.console.test_console_browser import agent_page, csp_violations

pytestmark = pytest.mark.browser
PERCENT = re.compile(r"^\d{1,3}(\.\d)? %$")


async def test_an_admin_adds_an_example_trains_activates_and_tries_it(
    training_client: TestClient, browser: Browser
) -> None:
    client = training_client
    base, store = f"http://127.0.0.1:{client.server.port}", client.server.app[STORE]
    learned = await customer_says(client, "is shipping to Tallinn possible")  # no model yet: queued
    _, password = await add_agent(store, "default", "ilze", name="Ilze", role=Role.ADMIN)
    page = await agent_page(browser, base, "ilze", password)
    violations = csp_violations(page)

    await page.goto(f"{base}/admin")
    await page.click(".admin-nav a[href='/admin/intents']")
    await expect(page.locator("#data-home")).to_contain_text("starter files")
    await page.click("#intent-list a:text-is('opening_hours')")
    await page.fill("#add-example input[name=text]", "are you open on [Christmas](holiday)")
    await page.click("#add-example button")
    await expect(page.locator("#admin-message")).to_have_text("Example added.")
    await expect(page.locator("#data-home")).to_contain_text("kept here")
    await expect(page.locator("tr.example input[name=text]").last).to_have_value("are you open on [Christmas](holiday)")

    await page.click(".sub-nav a[href='/admin/intents/learn']")
    row = page.locator(f"#learn-{learned}")
    await expect(row).to_contain_text("is shipping to Tallinn possible")
    await row.locator("select[name=choice]").select_option("delivery")
    await row.locator("button.assign").click()
    await expect(page.locator(f"#learn-{learned}")).to_have_text(
        "Learned as delivery: it counts from the next training."
    )
    [example] = [e for e in await store.training.nlu_examples_of("default") if e.get("message_id") == learned]
    assert example["intent"] == "delivery" and example["source"] == "learned"

    await page.click(".sub-nav a[href='/admin/intents/train']")
    await expect(page.locator("#no-models")).to_be_visible()
    await page.click("#train-button")
    await expect(page.locator("#job-progress")).to_be_visible()  # the progress, polled
    await expect(page.locator("#job-bar")).to_be_attached()
    await expect(page.locator("#job-result")).to_be_visible(timeout=60_000)
    metrics = page.locator("#new-metrics")
    await expect(metrics.locator(".accuracy")).to_have_text(PERCENT)
    await expect(metrics.locator("table.per-intent tbody tr")).to_have_count(3)
    await expect(page.locator("#job-result")).to_contain_text("No model is active yet")
    version = (await store.nlu.nlu_models("default"))[0]["_id"]
    await page.click("#activate-new")
    await expect(page.locator("#admin-message")).to_contain_text(f"Version {version} is active")
    await expect(page.locator(f"#version-{version} .badge")).to_have_text("active")
    await expect(page.locator("#active-metrics .accuracy")).to_have_text(PERCENT)

    await page.fill("#try-form input[name=text]", "hello")
    await page.click("#try-form button")
    await expect(page.locator("#try-intent")).to_have_text("greet")
    await expect(page.locator("#try-answer")).not_to_be_empty()
    answer = await page.locator("#try-answer").text_content()
    assert answer in ("Hello! How can I help you today?", "Hi! What can I do for you?")
    confidence = float(await page.locator("#try-confidence").text_content() or "0")
    assert 0.5 < confidence <= 1.0
    await expect(page.locator("#try-reply")).to_contain_text("answer (greet)")
    assert violations == []

    await page.click("button[name=lang][value=lv]")
    await page.goto(f"{base}/admin/intents/train")
    await expect(page.locator("#train h2")).to_have_text("Apmācība")
    await expect(page.locator(".sub-nav a.current")).to_have_text("Apmācīt un izmēģināt")

    await page.click("button[name=lang][value=ru]")
    await page.goto(f"{base}/admin/intents/train")
    await expect(page.locator("#train h2")).to_have_text("Обучение")
    await expect(page.locator(".sub-nav a.current")).to_have_text("Обучение и проверка")
