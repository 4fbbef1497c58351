"""The console's conversation lists in Debian's headless Chromium: Mine, Unassigned, All and
Resolved with their counts, filters by channel, team, label, agent and who waits, and paging
that shows every conversation once; bad filters are a clear 400."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient
from playwright.async_api import Browser, Page, expect

from bot.keys import PIPELINE, QUEUE, STORE
from bot.services.agents import add_agent
from conversations.agent_models import Presence, Role
from conversations.threads import ThreadFilter
from conversations.traffic import Identity, Inbound
from tests.web.console.test_console import log_in
from tests.web.console.test_console_browser import agent_page

pytestmark = pytest.mark.browser


async def customers(client: TestClient, count: int, channel: str = "webchat") -> list[str]:
    """``count`` customers write once each (no bot: each conversation is queued); their thread ids."""
    ids = []
    for n in range(count):
        inbound = Inbound("default", channel, f"{channel}-{n}", Identity(channel, f"{channel}-c{n}"), f"question {n}")
        recorded, task = await client.server.app[PIPELINE].receive(inbound)
        assert task is not None
        await task
        ids.append(recorded.thread.id)
    return ids


async def test_lists_filters_and_pages(client: TestClient, browser: Browser) -> None:
    base, app = f"http://127.0.0.1:{client.server.port}", client.server.app
    store = app[STORE]
    web = await customers(client, 27)
    sms = await customers(client, 2, "sms")
    ana, password = await add_agent(store, "default", "ana", name="Ana", role=Role.AGENT, teams=["billing"])
    assert ana is not None
    ana = await store.agents.go_online(ana.id, 0, Presence.ONLINE)
    assert ana is not None
    for thread_id in web[:2]:
        await app[QUEUE].take(ana, thread_id)
    await app[QUEUE].resolve(web[1], ana)
    await store.threads.set_thread_fields(web[0], labels=["vip"], team="billing")

    page = await agent_page(browser, base, "ana", password)
    await page.goto(f"{base}/console/conversations?view=all")
    await expect(page.locator("#view-all .count")).to_have_text("29")
    counts = [await page.locator(f"#view-{v} .count").text_content() for v in ("mine", "unassigned", "resolved")]
    assert counts == ["1", "27", "1"]
    await expect(page.locator("tr.conversation")).to_have_count(25)
    await page.click("#next-page")
    await expect(page.locator("tr.conversation")).to_have_count(4)
    await expect(page.locator("#next-page")).to_have_count(0)

    last_page = [await r.get_attribute("data-thread") for r in await page.locator("tr.conversation").all()]
    await page.goto(f"{base}/console/conversations?view=all&sort=oldest")  # the other way round, paged too
    oldest = [await r.get_attribute("data-thread") for r in await page.locator("tr.conversation").all()]
    await page.click("#next-page")
    await expect(page.locator("tr.conversation")).to_have_count(4)
    oldest += [await r.get_attribute("data-thread") for r in await page.locator("tr.conversation").all()]
    assert len(set(oldest)) == 29 and oldest[:4] == last_page[::-1]  # every one once, least recent first
    bad_sort = await page.request.get(f"{base}/console/conversations?sort=sideways")
    assert bad_sort.status == 400

    await page.goto(f"{base}/console/conversations?view=unassigned")
    await page.select_option("select[name=channel]", "sms")
    await page.click("#apply-filters")
    await expect(page.locator("tr.conversation")).to_have_count(2)
    assert {await r.get_attribute("data-thread") for r in await page.locator("tr.conversation").all()} == set(sms)

    await page.goto(f"{base}/console/conversations?view=all&label=vip")
    await expect(page.locator("tr.conversation")).to_have_count(1)
    await page.select_option("select[name=team]", "billing")
    await page.click("#apply-filters")
    await expect(page.locator("tr.conversation")).to_have_count(1)
    await page.goto(f"{base}/console/conversations?view=all&waiting=us&channel=sms")
    await expect(page.locator("tr.conversation")).to_have_count(2)
    await page.goto(f"{base}/console/conversations?view=mine")
    await expect(page.locator("tr.conversation")).to_have_count(1)
    assert await page.locator("tr.conversation").get_attribute("data-thread") == web[0]
    await page.goto(f"{base}/console/conversations?view=mine&channel=sms")
    await expect(page.locator("#no-conversations")).to_be_visible()


async def test_a_bad_filter_is_a_clear_400(client: TestClient) -> None:
    store = client.server.app[STORE]
    await add_agent(store, "default", "bo", name="Bo", role=Role.AGENT, password="correct horse battery")
    await log_in(client, "bo", "correct horse battery")
    for query, said in [
        ("view=everything", "view must be one of"),
        ("label=%3Cscript%3E", "label must be"),
        ("waiting=soon", "waiting must be us or customer"),
        ("before=yesterday", "before must be epoch milliseconds"),
    ]:
        response = await client.get(f"/console/conversations?{query}")
        assert response.status == 400 and said in await response.text(), query


def test_every_list_is_one_query_on_an_index() -> None:
    assert ThreadFilter(("queued",), channel="sms").query("a") == {
        "account_id": {"$eq": "a"}, "status": {"$eq": "queued"}, "channel": {"$eq": "sms"}
    }  # fmt: skip
    assert ThreadFilter(label="vip", waiting="us").query("a") == {
        "account_id": {"$eq": "a"}, "labels": "vip", "awaiting_since": {"$exists": True}
    }  # fmt: skip


async def write(client: TestClient, address: str, external_id: str, text: str) -> None:
    inbound = Inbound("default", "webchat", external_id, Identity("webchat", address), text)
    _, task = await client.server.app[PIPELINE].receive(inbound)
    if task is not None:  # None: a duplicate
        await task


async def set_visible(page: Page, visible: bool) -> None:
    """What the browser does when its tab goes to the background or comes back."""
    await page.evaluate(
        "(visible) => { Object.defineProperty(document, 'visibilityState', {configurable: true, get: () =>"
        " visible ? 'visible' : 'hidden'}); document.dispatchEvent(new Event('visibilitychange')); }",
        visible,
    )


async def test_unread_counts_per_conversation_and_per_list(client: TestClient, browser: Browser) -> None:
    base, store = f"http://127.0.0.1:{client.server.port}", client.server.app[STORE]
    first, second, third = await customers(client, 3)
    _, password = await add_agent(store, "default", "ana", name="Ana", role=Role.AGENT)
    page = await agent_page(browser, base, "ana", password)
    await expect(page.locator("#queue .unread-count")).to_have_text("3 unread")
    await expect(page.locator(f"#queue li[data-thread={first}] .unread")).to_have_text("1")

    await page.goto(f"{base}/console?thread={first}")  # opening it is seeing it
    await expect(page.locator("#queue .unread-count")).to_have_text("2 unread")
    await expect(page.locator(f"#queue li[data-thread={first}] .unread")).to_have_count(0)
    await write(client, "webchat-c0", "more-1", "are you there?")  # seen live: the thread is open
    await expect(page.locator("#history .item--in", has_text="are you there?")).to_have_count(1)
    await expect(page.locator(f"#queue li[data-thread={first}]")).to_be_visible()
    await expect(page.locator(f"#queue li[data-thread={first}] .unread")).to_have_count(0)
    await set_visible(page, False)  # the tab goes to the background: what comes is shown, not read
    await write(client, "webchat-c0", "more-0", "hello? still there?")
    await expect(page.locator("#history .item--in", has_text="still there?")).to_have_count(1)
    await expect(page.locator(f"#queue li[data-thread={first}] .unread")).to_have_text("1")
    await set_visible(page, True)  # the agent comes back to it
    await expect(page.locator(f"#queue li[data-thread={first}] .unread")).to_have_count(0)
    thread = await store.threads.get_thread(first)
    assert thread is not None and thread.unread_since_ms is None

    await page.goto(f"{base}/console/conversations?view=unassigned")  # away from it, two more come
    await write(client, "webchat-c0", "more-2", "hello?")
    await write(client, "webchat-c0", "more-3", "anyone?")
    await page.reload()
    await expect(page.locator(f"tr[data-thread={first}] .unread")).to_have_text("2")
    await expect(page.locator("#view-unassigned .unread-count")).to_have_text("3 unread")
    await page.check("input[name=unread]")
    await page.click("#apply-filters")
    await expect(page.locator("tr.conversation")).to_have_count(3)
    await page.goto(f"{base}/console?thread={second}")
    await page.goto(f"{base}/console/conversations?view=unassigned&unread=1")
    shown = {await row.get_attribute("data-thread") for row in await page.locator("tr.conversation").all()}
    assert shown == {first, third}
    bad = await page.request.get(f"{base}/console/conversations?view=all&unread=yes")
    assert bad.status == 400 and "unread must be 1" in await bad.text()


async def test_a_redelivered_message_marks_nothing_unread(client: TestClient) -> None:
    store = client.server.app[STORE]
    [thread_id] = await customers(client, 1)
    await write(client, "webchat-c0", "again-1", "one more thing")
    seen_until = max(m.created_at for m in await store.messages.thread_messages(thread_id))
    await store.threads.mark_seen("default", thread_id, seen_until)
    await write(client, "webchat-c0", "again-1", "one more thing")  # the channel delivers it again
    thread = await store.threads.get_thread(thread_id)
    assert thread is not None and thread.unread_since_ms is None
    assert await store.threads.count_threads("default", ThreadFilter(unread=True)) == 0
