"""The inboxes page in Debian's headless Chromium: a new account's admin finds it from the top bar,
reads what an inbox is, adds a Telegram bot (the local fake Bot API), sees its webhook URL and that
its token is set — never the token — and checks it: the page names the bot; a test message sent
from the page reaches the bot's chat. In Latvian and Russian too."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.async_api import Browser, expect

from tests.conftest import make_settings
from tests.fakes import reachable, running
from tests.fakes.telegram_api import FakeBotAPI
from tests.web.admin.inboxes_kit import inboxes_page, two_accounts

pytestmark = pytest.mark.browser

BOT_TOKEN = "7364001122:AAH-browser-inbox-token"
HOOK_SECRET = "browser-hook-secret_7"


async def test_an_admin_adds_a_bot_and_checks_it(
    embedded: Any, db_name: str, start_client: Any, browser: Browser
) -> None:
    fake = FakeBotAPI(token=BOT_TOKEN)
    async with running(fake):
        settings = make_settings(embedded.uri, db_name, egress=reachable([fake]), telegram={"for_accounts": True})
        client = await two_accounts(await start_client(settings))
        base = f"http://127.0.0.1:{client.server.port}"
        page = await inboxes_page(browser, client)
        await expect(page.locator("h1")).to_contain_text("Inboxes")
        await expect(page.locator("#no-inboxes")).to_contain_text("@BotFather")

        form = page.locator("#add-telegram form")
        await form.locator("input[name=name]").fill("Sales bot")
        await form.locator("input[name=token]").fill(BOT_TOKEN)
        await form.locator("input[name=webhook_secret]").fill(HOOK_SECRET)
        await form.locator("input[name=api_base]").fill(fake.url)
        await form.locator("button.primary").click()
        await expect(page.locator("#admin-message")).to_have_text("Inbox added.")
        await expect(page.locator("#no-inboxes")).to_have_count(0)

        inbox = page.locator("article.inbox:not(#inbox-webchat)")  # beside the account's own web chat
        await expect(inbox).to_have_count(1)
        await expect(inbox.locator(".inbox-name")).to_have_text("Sales bot")
        await expect(inbox.locator("[data-state]")).to_have_text("enabled")
        await expect(inbox.locator("input.webhook-url")).to_have_value(
            f"{base}/webhooks/telegram/shop/" + (await inbox.get_attribute("id") or "").removeprefix("inbox-")
        )
        await expect(inbox.locator(".secrets .secret-state[data-field=token]")).to_have_text("token ✓ set")
        html = await page.content()
        assert BOT_TOKEN not in html and HOOK_SECRET not in html

        await inbox.locator("button.check").click()
        await expect(page.locator("article.inbox .check-result")).to_have_text("It works: this is the bot @shop_bot.")
        assert [c.method for c in fake.calls] == ["getMe"]

        await inbox.locator("form.send-test input[name=to]").fill("4242")
        await inbox.locator("button.send-test").click()
        await expect(page.locator("article.inbox .check-result")).to_have_text("Test message sent to 4242.")
        assert [m["text"] for m in fake.sent("sendMessage")] == ["omnirouter test message from Sales bot"]
        await page.screenshot(path="/tmp/inbox17b_test_message.png", full_page=True)

        await page.click("button[name=lang][value=lv]")
        await page.goto(f"{base}/admin/inboxes")
        await expect(page.locator("h1")).to_contain_text("Iesūtnes")
        await expect(page.locator("article.inbox button.check")).to_have_text("Pārbaudīt")
        await expect(page.locator("article.inbox button.send-test")).to_have_text("Nosūtīt testa ziņu")
        await page.click("button[name=lang][value=ru]")
        await page.goto(f"{base}/admin/inboxes")
        await expect(page.locator("h1")).to_contain_text("Входящие ящики")
        await expect(page.locator("article.inbox button.check")).to_have_text("Проверить")
        await expect(page.locator("article.inbox button.send-test")).to_have_text("Отправить тестовое сообщение")
