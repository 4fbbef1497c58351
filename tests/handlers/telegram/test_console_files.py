"""A customer's files in the console, in Debian's headless Chromium: a Telegram photo previewed in
the conversation and a document downloaded, both through the router, fetched from the provider
once and kept in the store's GridFS; nobody of another account reaches them; erasing the contact
erases them."""

from __future__ import annotations

import base64

import pytest
from aiohttp.test_utils import TestClient
from playwright.async_api import Browser, expect

from bot.keys import STORE
from bot.services.accounts import create_account
from bot.services.agents import add_agent
from bot.services.contacts import erase_contact, export_contact, find_contact
from conversations.agent_models import Role
from tests import factories
from tests.fakes.telegram_api import FakeBotAPI
from tests.handlers.channels import fixture, post_telegram
from tests.router.test_inbound import wait_for
from tests.web.conftest import browser  # noqa: F401 (the session's Chromium)
from tests.web.console.test_agent_files import drawn_png, take_on_shift
from tests.web.console.test_console_browser import agent_page

pytestmark = pytest.mark.browser
PHOTO, DOCUMENT = "AgACAgIAAxkBAAMGZlarge", "BQACAgIAAxkBAAMHZinvoice"


async def test_a_photo_is_previewed_and_a_document_downloaded_through_the_store(
    router: TestClient, bot_api: FakeBotAPI, browser: Browser
) -> None:
    store, base = router.server.app[STORE], f"http://127.0.0.1:{router.server.port}"
    _, password = await add_agent(store, "default", "ola", name="Ola", role=Role.ADMIN)
    page = await agent_page(browser, base, "ola", password)
    drawn = await page.evaluate(
        "() => { const c = document.createElement('canvas'); c.width = 8; c.height = 6;"
        " const g = c.getContext('2d'); g.fillStyle = '#2952cc'; g.fillRect(0, 0, 8, 6);"
        " return c.toDataURL('image/jpeg').split(',')[1]; }"
    )
    bot_api.files[PHOTO] = base64.b64decode(drawn)
    bot_api.files[DOCUMENT] = b"%PDF-1.4 invoice"
    await post_telegram(router, fixture("telegram", "photo_caption"))
    await post_telegram(router, fixture("telegram", "document"))
    photo_message, document_message = sorted(
        await factories.messages(store, direction="in"), key=lambda m: m.created_at
    )
    [thread] = await factories.threads(store)

    await page.goto(f"{base}/console?thread={thread.id}")
    preview = page.locator(".attachment__preview img")
    await expect(preview).to_have_count(1)
    await page.wait_for_function("() => document.querySelector('.attachment__preview img').naturalWidth === 8")
    link = page.locator(".attachment__download").nth(1)
    download = await page.request.get(f"{base}{await link.get_attribute('href')}")
    assert download.status == 200 and await download.body() == b"%PDF-1.4 invoice"
    assert download.headers["content-type"] == "application/pdf"
    assert download.headers["content-disposition"].startswith("attachment;")
    assert download.headers["x-content-type-options"] == "nosniff"
    kept = [await store.files.cached("default", m.id, 0) for m in (photo_message, document_message)]
    assert all(kept) and await store.files.usage("default") == len(bot_api.files[PHOTO]) + len(b"%PDF-1.4 invoice")
    bot_api.files.clear()  # the provider has forgotten them: the store has not
    again = await page.request.get(f"{base}/console/messages/{document_message.id}/attachments/0")
    assert again.status == 200 and await again.body() == b"%PDF-1.4 invoice"

    await create_account(store, "other", "Other", "olga", password="other account pass")
    outsider = await (await browser.new_context()).new_page()
    await outsider.goto(f"{base}/login?account=other")
    await outsider.fill("input[name=login]", "olga")
    await outsider.fill("input[name=password]", "other account pass")
    await outsider.click("button[type=submit]")
    await expect(outsider.locator("#presence")).to_be_visible()
    refused = await outsider.request.get(f"{base}/console/messages/{document_message.id}/attachments/0")
    assert refused.status == 404 and await refused.body() != b"%PDF-1.4 invoice"
    signed_out = await router.get(f"/console/messages/{document_message.id}/attachments/0", allow_redirects=False)
    assert signed_out.status in (302, 303, 401)

    scope = await find_contact(store, "default", photo_message.contact_id)
    exported = await export_contact(store, scope, "cli")
    files = sorted(exported["data"]["files"], key=lambda f: f["message_id"] == photo_message.id)
    assert [f["content"]["base64"] for f in files] == [base64.b64encode(b"%PDF-1.4 invoice").decode(), drawn]
    await erase_contact(store, scope, "cli")
    assert await store.files.usage("default") == 0
    assert await store.files.cached("default", document_message.id, 0) is None


async def test_an_agent_sends_a_photo_and_a_document_to_a_telegram_customer(
    router: TestClient, bot_api: FakeBotAPI, browser: Browser
) -> None:
    store, base = router.server.app[STORE], f"http://127.0.0.1:{router.server.port}"
    await post_telegram(router, fixture("telegram", "text"))
    [thread] = await factories.threads(store)
    _, password = await add_agent(store, "default", "ola", name="Ola", role=Role.ADMIN)
    page = await agent_page(browser, base, "ola", password)
    await take_on_shift(page, base, thread.id)
    png = await drawn_png(page, 5, 5)
    await page.set_input_files("#reply-file", files=[{"name": "photo.png", "mimeType": "image/png", "buffer": png}])
    await page.fill("#reply-text", "The damaged box")
    await page.click("#send-reply")
    await expect(page.locator("#reply-text")).to_have_value("")  # a fresh form swapped in: the next file goes there
    await expect(page.locator("#history .sent-file a", has_text="photo.png")).to_have_count(1)
    fake_pdf = b"%PDF-1.4 label"
    await page.set_input_files(
        "#reply-file", files=[{"name": "label.pdf", "mimeType": "application/pdf", "buffer": fake_pdf}]
    )
    await page.click("#send-reply")

    async def delivered() -> bool:
        return len(bot_api.sent("sendPhoto")) == 1 and len(bot_api.sent("sendDocument")) == 1

    await wait_for(delivered)
    [photo], [document] = bot_api.sent("sendPhoto"), bot_api.sent("sendDocument")
    assert photo["photo"]["bytes"] == png and photo["photo"]["filename"] == "photo.png"
    assert photo["caption"] == "The damaged box"
    assert document["document"]["bytes"] == fake_pdf and document["document"]["content_type"] == "application/pdf"
    assert "caption" not in document  # a file alone
