"""The account page in Debian's headless Chromium: an account's admin logs in to their account,
saves a channel's secrets — which the page never shows again, only that they are set — and makes
an API token that is shown once."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient
from playwright.async_api import Browser, expect

from bot.keys import STORE
from bot.services.accounts import create_account

pytestmark = pytest.mark.browser

BOT_TOKEN = "7364001122:AAHsecret-bot-token-from-botfather"
HOOK_SECRET = "shop-hook-secret_42"


async def test_a_saved_secret_is_never_shown_again(client: TestClient, browser: Browser) -> None:
    base = f"http://127.0.0.1:{client.server.port}"
    await create_account(client.server.app[STORE], "shop", "Corner Shop", "owner", password="correct horse battery")
    page = await (await browser.new_context()).new_page()
    await page.goto(f"{base}/login?account=shop")
    await expect(page.locator("input[name=account]")).to_have_value("shop")
    await page.fill("input[name=login]", "owner")
    await page.fill("input[name=password]", "correct horse battery")
    await page.click("button[type=submit]")
    await page.click("#nav-account")
    await expect(page.locator("h1")).to_contain_text("Corner Shop")
    await expect(page.locator("#url-telegram")).to_have_value(f"{base}/webhooks/telegram/shop")

    telegram = page.locator("#channel-telegram")
    await expect(telegram.locator(".secret-state[data-field=token]")).to_have_text("not set")
    await telegram.locator("input[name=token]").fill(BOT_TOKEN)
    await telegram.locator("input[name=webhook_secret]").fill(HOOK_SECRET)
    await telegram.locator("button.primary").click()
    await expect(page.locator("#admin-message")).to_have_text("Saved.")

    telegram = page.locator("#channel-telegram")
    await expect(telegram.locator(".secret-state[data-field=token]")).to_have_text("✓ set")
    await expect(telegram.locator("input[name=token]")).to_have_value("")
    await expect(telegram.locator("input[name=token]")).to_have_attribute("placeholder", "set — leave empty to keep it")
    for _ in range(2):  # neither after saving nor after a reload
        html = await page.content()
        assert BOT_TOKEN not in html and HOOK_SECRET not in html
        await page.reload()

    await page.fill("#new-token input[name=name]", "crm sync")
    await page.click("#new-token button")
    token = await page.locator("#revealed-value").input_value()
    assert token.startswith("omr_")
    await expect(page.locator("#revealed")).to_contain_text("shown only this once")
    await page.goto(f"{base}/admin/account")
    assert token not in await page.content()
    await expect(page.locator("#tokens tbody tr")).to_have_count(1)

    await page.click("button[name=lang][value=lv]")
    await page.goto(f"{base}/admin/account")
    await expect(page.locator("#channel-telegram .secret-state[data-field=token]")).to_have_text("✓ iestatīts")
    await expect(page.locator("#tokens h2")).to_have_text("API žetoni")

    await page.click("button[name=lang][value=ru]")
    await page.goto(f"{base}/admin/account")
    await expect(page.locator("#channel-telegram .secret-state[data-field=token]")).to_have_text("✓ задан")
    await expect(page.locator("#tokens h2")).to_have_text("API-токены")
