"""A Twilio number on the inboxes page in Debian's headless Chromium: an account's admin adds one
(the local fake of Twilio's API), sees the SMS and voice webhook URLs to paste into Twilio and that
its auth token is set — never the token — and sends a test message from the page through the
number's own Twilio account."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.async_api import Browser, expect

from tests.fakes import reachable, running
from tests.fakes.twilio import FakeTwilio
from tests.handlers.sms.test_sms import sms_settings
from tests.web.admin.inboxes_kit import inboxes_page, two_accounts

pytestmark = pytest.mark.browser

SID = "AC" + "d" * 32
TOKEN = "browser-twilio-auth-token"
NUMBER = "+14155550401"


async def test_an_admin_adds_a_twilio_number_and_sends_a_test_message(
    embedded: Any, db_name: str, start_client: Any, browser: Browser
) -> None:
    install, shop = FakeTwilio(), FakeTwilio(SID, TOKEN)
    async with running(install, shop):
        egress = reachable((install, shop))
        settings = sms_settings(embedded.uri, db_name, install.url, server={"public_url": ""}, egress=egress)
        client = await two_accounts(await start_client(settings))
        base = f"http://127.0.0.1:{client.server.port}"
        page = await inboxes_page(browser, client)
        await expect(page.locator("#no-inboxes")).to_contain_text("Twilio")

        form = page.locator("#add-sms form")
        await form.locator("input[name=name]").fill("Shop line")
        await form.locator("input[name=account_sid]").fill(SID)
        await form.locator("input[name=auth_token]").fill(TOKEN)
        await form.locator("input[name=from_number]").fill(NUMBER)
        await form.locator("input[name=api_base]").fill(shop.url)
        await form.locator("select[name=serves]").select_option("both")  # texts and calls: both addresses shown
        await form.locator("button.primary").click()
        await expect(page.locator("#admin-message")).to_have_text("Inbox added.")

        inbox = page.locator("article.inbox:not(#inbox-webchat)")  # beside the account's own web chat
        await expect(inbox).to_have_count(1)
        await expect(inbox.locator(".badge")).to_have_text("SMS")
        await expect(inbox.locator("input.webhook-url")).to_have_value(f"{base}/webhooks/sms")
        await expect(inbox.locator("input.voice-url")).to_have_value(f"{base}/webhooks/voice")
        await expect(inbox.locator(".secrets .secret-state[data-field=auth_token]")).to_have_text("auth_token ✓ set")
        assert TOKEN not in await page.content()

        shop.numbers = {NUMBER: "Shop line at Twilio"}
        await inbox.locator("button.check").click()
        await expect(page.locator("article.inbox .check-result")).to_have_text(
            f"It works: this is the Twilio number {NUMBER} (Shop line at Twilio)."
        )

        await page.locator("article.inbox form.send-test input[name=to]").fill("+37120000000")
        await page.locator("article.inbox button.send-test").click()
        await expect(page.locator("article.inbox .check-result")).to_have_text("Test message sent to +37120000000.")
        assert [(m["From"], m["To"], m["Body"]) for m in shop.sent] == [
            (NUMBER, "+37120000000", "omnirouter test message from Shop line")
        ]
        assert install.sent == []
