"""What an agent sees of a reply Telegram refused, in Debian's headless Chromium: the reason in
words beside the provider's text, a Retry button that sends it again, and the failed reply in the
"Failed deliveries" list; a transfer to an agent who cannot take the conversation says so at once
and offers their team's queue."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient
from playwright.async_api import Browser, expect

from bot.keys import STORE
from bot.services.agents import add_agent
from conversations.agent_models import Role
from conversations.thread_models import OutboxState
from tests import factories
from tests.fakes.telegram_api import FakeBotAPI
from tests.handlers.channels import fixture, post_telegram
from tests.router.test_inbound import wait_for
from tests.web.conftest import browser  # noqa: F401 (the session's Chromium)
from tests.web.console.test_console_browser import agent_page

pytestmark = pytest.mark.browser


async def test_a_refused_reply_is_explained_listed_and_retried(
    router: TestClient, bot_api: FakeBotAPI, browser: Browser
) -> None:
    store, base = router.server.app[STORE], f"http://127.0.0.1:{router.server.port}"
    bot_api.fail_next(403, description="Forbidden: bot was blocked by the user")
    await post_telegram(router, fixture("telegram", "text"))  # the queued notice is refused

    async def dead() -> bool:
        return len(await factories.outbox(store, state=OutboxState.DEAD)) == 1

    await wait_for(dead)
    [item] = await factories.outbox(store, state=OutboxState.DEAD)
    _, password = await add_agent(store, "default", "ola", name="Ola", role=Role.ADMIN)
    page = await agent_page(browser, base, "ola", password)

    await page.goto(f"{base}/console/conversations?view=failed")
    await expect(page.locator("#view-failed .count")).to_have_text("1")
    row = page.locator("tr.failed")
    await expect(row).to_contain_text("The customer blocked the bot on this channel.")
    await row.locator("a").click()
    failure = page.locator(f"#failure-{item.message_id}")
    await expect(failure).to_contain_text("The customer blocked the bot on this channel.")
    await expect(failure).to_contain_text("Forbidden: bot was blocked by the user")
    await failure.locator("button.retry").click()  # Telegram takes it this time

    async def sent() -> bool:
        return len(await factories.outbox(store, state=OutboxState.SENT)) == 1

    await wait_for(sent)
    await page.goto(f"{base}/console/conversations?view=failed")
    await expect(page.locator("#no-failures")).to_be_visible()
    assert [e.action for e in await factories.audit(store, action="outbox.retry")] == ["outbox.retry"]


async def test_a_transfer_to_an_agent_who_cannot_take_it_offers_their_team(
    router: TestClient, bot_api: FakeBotAPI, browser: Browser
) -> None:
    store, base = router.server.app[STORE], f"http://127.0.0.1:{router.server.port}"
    await post_telegram(router, fixture("telegram", "text"))
    [thread] = await factories.threads(store)
    await add_agent(store, "default", "vera", name="Vera", role=Role.AGENT, teams=["vip"])  # not on shift
    _, password = await add_agent(store, "default", "ola", name="Ola", role=Role.ADMIN)
    page = await agent_page(browser, base, "ola", password)
    await page.goto(f"{base}/console?thread={thread.id}")
    option = page.locator("form.transfer select[name=agent] option", has_text="Vera")
    await expect(option).to_contain_text("cannot take it now")
    await page.select_option("form.transfer select[name=agent]", label=await option.text_content() or "")
    await page.fill("form.transfer input[name=note]", "VIP customer")
    await page.click("form.transfer button")
    await expect(page.locator("#cannot-take")).to_contain_text("Vera cannot take this conversation now")
    await expect(page.locator("#cannot-take")).to_contain_text("they are not on shift")
    assert (await store.threads.get_thread(thread.id)).team is None  # type: ignore[union-attr]  # nothing moved yet
    await page.click("#transfer-to-queue")
    moved = await store.threads.get_thread(thread.id)
    assert moved is not None and moved.team == "vip" and moved.status == "queued"
