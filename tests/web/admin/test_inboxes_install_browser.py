"""The install's own Twilio number and mailbox, and the account's own web chat, on the inboxes page
in Debian's headless Chromium: the install's admin finds them listed with where they are edited,
their secrets as set only, and what to give Twilio, how mail comes in and the chat's snippet; in
Latvian and Russian too. Another account's admin finds its own web chat and none of the install's."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.async_api import Browser, expect

from tests.web.admin.inboxes_kit import inboxes_page
from tests.web.admin.test_inboxes_install import ADDRESS, NUMBER, PUBLIC, SECRETS, install_router, install_settings

pytestmark = pytest.mark.browser


async def test_the_install_s_rows_in_three_languages(
    embedded: Any, db_name: str, start_client: Any, browser: Browser
) -> None:
    client = await install_router(await start_client(install_settings(embedded, db_name)))
    page = await inboxes_page(browser, client, "default", "ada")
    sms, email, chat = (page.locator(f"#inbox-{row}") for row in ("sms", "email", "webchat"))
    await expect(sms.locator(".edited-where")).to_contain_text("Sections [sms] and [twilio]")
    await expect(sms.locator("[data-setting=from_number]")).to_contain_text(NUMBER)
    await expect(sms.locator(".secret-state[data-field=auth_token]")).to_have_text("auth_token ✓ set")
    await expect(sms.locator("input.voice-url")).to_have_value(f"{PUBLIC}/webhooks/voice")
    await expect(sms.locator("button")).to_have_count(0)
    await expect(email.locator("[data-setting=address]")).to_contain_text(ADDRESS)
    await expect(email.locator(".secret-state[data-field=smtp_password]")).to_have_text("smtp_password ✓ set")
    await expect(email.locator(".mail-path")).to_contain_text("Mail comes in over IMAP")
    await expect(chat.locator("input.chat-url")).to_have_value(f"{PUBLIC}/chat")
    await expect(chat.locator("textarea.widget-snippet")).to_have_value(
        f'<script src="{PUBLIC}/widget.js" data-account="default" async></script>'
    )
    html = await page.content()
    assert not any(secret in html for secret in SECRETS)

    await page.click("button[name=lang][value=lv]")
    await page.goto(f"http://127.0.0.1:{client.server.port}/admin/inboxes")
    await expect(sms.locator(".edited-where")).to_contain_text("Sadaļas [sms] un [twilio]")
    await expect(chat.locator(".edited-where")).to_contain_text("Konta paša tīmekļa tērzēšana")
    await page.click("button[name=lang][value=ru]")
    await page.goto(f"http://127.0.0.1:{client.server.port}/admin/inboxes")
    await expect(email.locator(".edited-where")).to_contain_text("Раздел [email]")
    await expect(chat.locator(".edited-where")).to_contain_text("Собственный веб-чат аккаунта")

    rival = await inboxes_page(browser, client, "rival", "boss")
    await expect(rival.locator("#inbox-webchat input.chat-url")).to_have_value(f"{PUBLIC}/chat?account=rival")
    await expect(rival.locator("#inbox-sms")).to_have_count(0)
    await expect(rival.locator("#inbox-email")).to_have_count(0)
    html = await rival.content()
    assert NUMBER not in html and ADDRESS not in html
