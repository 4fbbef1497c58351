"""Two-factor sign-in in Debian's headless Chromium, as an agent would go through it: set up from
the agent's own page (the QR code and the key; the code computed here from the key, as an
authenticator app would), log out, log in with password and code; a replayed code refused; a
recovery code good once; the second step not skipped by going elsewhere; an account that
requires it sending an agent to set it up first. No Content-Security-Policy violation anywhere."""

from __future__ import annotations

import time

import pyotp
import pytest
from aiohttp.test_utils import TestClient
from playwright.async_api import Browser, Page, expect

from bot.keys import STORE
from bot.services.agents import add_agent
from conversations.agent_models import Role
from tests.web.console.test_console_browser import agent_page, csp_violations

pytestmark = pytest.mark.browser


def code_at(secret: str, steps_ahead: int = 0) -> str:
    return pyotp.TOTP(secret).at(time.time() + 30 * steps_ahead)


async def password_step(page: Page, base: str, login: str, password: str) -> None:
    await page.goto(f"{base}/login")
    await page.fill("input[name=login]", login)
    await page.fill("input[name=password]", password)
    await page.click("button[type=submit]")


async def log_out(page: Page) -> None:
    await page.click("nav.topbar form[action='/logout'] button")
    await expect(page.locator("input[name=password]")).to_be_visible()


async def qr_shown(page: Page) -> None:
    """The QR code image loaded (from this origin, as the CSP demands)."""
    await expect(page.locator("#qr-code")).to_be_visible()
    # decode() waits for the image (it is visible at its set size before it loads) and fails if it is broken
    assert await page.locator("#qr-code").evaluate("img => img.decode().then(() => img.naturalWidth)") > 100


async def test_an_agent_sets_up_two_factor_and_signs_in_with_it(client: TestClient, browser: Browser) -> None:
    base = f"http://127.0.0.1:{client.server.port}"
    _, password = await add_agent(client.server.app[STORE], "default", "ava", name="Ava", role=Role.AGENT)
    page = await agent_page(browser, base, "ava", password)
    violations = csp_violations(page)

    await page.click("#nav-security")
    await expect(page.locator("#two-factor-state")).to_contain_text("off")
    await page.click("#start-setup")
    await qr_shown(page)
    secret = (await page.locator("#setup-key").inner_text()).replace(" ", "")
    await page.fill("#setup-code", code_at(secret))
    await page.click("#setup-form button[type=submit]")
    await expect(page.locator("#recovery-codes li")).to_have_count(10)
    recovery = [text.strip() for text in await page.locator("#recovery-codes li").all_inner_texts()]
    await page.click("#continue")
    await expect(page.locator("#two-factor-state")).to_contain_text("on")
    await log_out(page)

    await password_step(page, base, "ava", password)
    await expect(page).to_have_url(f"{base}/login/2fa")
    await page.goto(f"{base}/console")  # skipping the second step: not signed in
    await expect(page).to_have_url(f"{base}/login")
    await expect(page.locator("input[name=password]")).to_be_visible()

    await password_step(page, base, "ava", password)
    ahead = code_at(secret, 1)
    await page.fill("#code", ahead)
    await page.click("#code-form button[type=submit]")
    await expect(page.locator("#presence")).to_be_visible()
    await log_out(page)

    await password_step(page, base, "ava", password)
    await page.fill("#code", ahead)  # the same code again: refused
    await page.click("#code-form button[type=submit]")
    await expect(page.locator("#code-error")).to_be_visible()
    await page.fill("#code", recovery[0])
    await page.click("#code-form button[type=submit]")
    await expect(page.locator("#presence")).to_be_visible()
    await log_out(page)

    await password_step(page, base, "ava", password)
    await page.fill("#code", recovery[0])  # a recovery code works once
    await page.click("#code-form button[type=submit]")
    await expect(page.locator("#code-error")).to_be_visible()
    assert violations == []


async def test_an_account_that_requires_two_factor_sends_the_agent_to_set_it_up(
    client: TestClient, browser: Browser
) -> None:
    base = f"http://127.0.0.1:{client.server.port}"
    store = client.server.app[STORE]
    _, password = await add_agent(store, "default", "bob", name="Bob", role=Role.AGENT)
    await store.accounts.update_account("default", require_two_factor=True)
    page = await (await browser.new_context()).new_page()
    violations = csp_violations(page)

    await password_step(page, base, "bob", password)
    await expect(page).to_have_url(f"{base}/login/2fa/setup")
    await expect(page.locator("#two-factor-required")).to_be_visible()
    await page.goto(f"{base}/console")  # nothing before it is set up
    await expect(page).to_have_url(f"{base}/login")

    await password_step(page, base, "bob", password)
    await qr_shown(page)
    secret = (await page.locator("#setup-key").inner_text()).replace(" ", "")
    await page.fill("#setup-code", code_at(secret))
    await page.click("#setup-form button[type=submit]")
    await expect(page.locator("#recovery-codes li")).to_have_count(10)
    await page.click("#continue")
    await expect(page.locator("#presence")).to_be_visible()
    assert violations == []
