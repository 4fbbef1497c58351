"""The install's own Twilio number and mailbox, and the account's own web chat, on the inboxes page
in Debian's headless Chromium: the install's admin finds them listed with where they are edited,
their secrets as set only, and what to give Twilio, how mail comes in and the chat's snippet; in
Latvian and Russian too. Another account's admin finds its own web chat and none of the install's,
and checks its mailbox inbox and sends a test mail from it (a local aiosmtpd server)."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.async_api import Browser, expect

from bot.keys import STORE
from conversations.embedded import free_port
from conversations.models import utcnow
from tests.conftest import make_settings
from tests.mailservers import SmtpSink
from tests.web.admin.inboxes_kit import inboxes_page, two_accounts
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
    # Check and a test message, as an extra number has (pressed in test_inboxes_sms.py, against the fake)
    await expect(sms.locator("button")).to_have_count(2)
    await expect(sms.locator("button.check")).to_have_text("Check")
    await expect(sms.locator("button.send-test")).to_have_text("Send a test message")
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


async def test_an_admin_checks_a_mailbox_and_sends_a_test_mail_in_three_languages(
    embedded: Any, db_name: str, start_client: Any, browser: Browser
) -> None:
    sink = SmtpSink()
    await sink.start()
    try:
        email = {"address": ADDRESS, "listen_port": free_port(), "poll_interval": 0.2}
        egress = {"allowed_destinations": f"127.0.0.1:{sink.port}"}
        client = await two_accounts(
            await start_client(make_settings(embedded.uri, db_name, email=email, egress=egress))
        )
        config = {"address": "sales@corner.example", "smtp_host": "127.0.0.1", "smtp_port": sink.port}
        config["smtp_security"] = "none"
        inbox = await client.server.app[STORE].inboxes.create_inbox(
            "shop", "email", "Sales", config, utcnow(), "email:sales@corner.example"
        )
        assert inbox is not None
        page = await inboxes_page(browser, client)
        row = page.locator(f"#inbox-{inbox.id}")
        await row.locator("button.check").click()
        await expect(page.locator(f"#result-{inbox.id}")).to_have_text(
            f"It works: its SMTP server 127.0.0.1:{sink.port} takes sales@corner.example (EHLO); its mail comes to "
            "this install's SMTP listener."
        )
        await row.locator("form.send-test input[name=to]").fill("ivan@mail.example")
        await row.locator("button.send-test").click()
        await expect(page.locator(f"#result-{inbox.id}")).to_have_text("Test message sent to ivan@mail.example.")
        assert [str(m["Subject"]) for _, m, _ in sink.received] == ["omnirouter test message from Sales"]

        await page.click("button[name=lang][value=lv]")
        await page.goto(f"http://127.0.0.1:{client.server.port}/admin/inboxes")
        await row.locator("button.check").click()
        await expect(page.locator(f"#result-{inbox.id}")).to_contain_text("Darbojas: tās SMTP serveris")
        await page.click("button[name=lang][value=ru]")
        await page.goto(f"http://127.0.0.1:{client.server.port}/admin/inboxes")
        await row.locator("form.send-test input[name=to]").fill("not an address")
        await row.locator("button.send-test").click()
        await expect(page.locator(f"#problem-test-{inbox.id}")).to_have_text(
            "Введите адрес электронной почты, например name@example.com."
        )
        assert len(sink.received) == 1
    finally:
        await sink.stop()
