"""Two web chat inboxes of one account in Debian's headless Chromium: a business's site (another
origin) embeds the widget of inbox B (``data-inbox``); it opens in B's look, and what the visitor
writes lands in inbox B. The same browser on a page with inbox A's widget is a stranger there."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from playwright.async_api import Browser, expect

from bot.keys import STORE
from conversations.embedded import free_port
from conversations.models import utcnow
from tests import factories
from tests.web.test_widget_browser import FIRST_ANSWER

pytestmark = pytest.mark.browser

PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Shop</title></head>
<body><main><h1>Shop</h1></main>
<script src="{router}/widget.js" data-account="default" data-inbox="{inbox}" async></script>
</body></html>"""


@pytest.fixture
async def site(client: TestClient) -> AsyncIterator[str]:
    """The business's web server on http://localhost:PORT; ``/?inbox=…`` embeds that inbox's widget."""
    router = f"http://127.0.0.1:{client.server.port}"

    async def shop(request: web.Request) -> web.Response:
        return web.Response(text=PAGE.format(router=router, inbox=request.query["inbox"]), content_type="text/html")

    app = web.Application()
    app.add_routes([web.get("/", shop)])
    server = TestServer(app, host="127.0.0.1", port=free_port())
    await server.start_server()
    try:
        yield f"http://localhost:{server.port}"
    finally:
        await server.close()


async def test_the_widget_of_inbox_b_opens_in_its_look_and_its_messages_land_in_inbox_b(
    client: TestClient, site: str, browser: Browser
) -> None:
    store = client.server.app[STORE]
    inboxes = {}
    for name, greeting in (("Shop chat", "Welcome to the shop"), ("Support chat", "How can we help?")):
        config = {"greeting": greeting, "color": "#225522", "sites": site}
        inbox = await store.inboxes.create_inbox("default", "webchat", name, config, utcnow(), None)
        assert inbox is not None
        inboxes[name] = inbox.id
    b = inboxes["Support chat"]

    context = await browser.new_context()
    page = await context.new_page()
    await page.goto(f"{site}/?inbox={b}")
    await page.wait_for_function("() => document.querySelector('.omnirouter-panel iframe')")
    await page.locator(".omnirouter-launcher").click()
    chat = page.frame_locator(".omnirouter-panel iframe")
    await expect(chat.locator("h1")).to_have_text("Support chat")
    await expect(chat.locator("#empty strong")).to_have_text("How can we help?")
    await expect(chat.locator("#status")).to_have_text("Online")
    await chat.locator("#text").fill("my invoice is wrong")
    await chat.locator("#text").press("Enter")
    await expect(chat.locator(".msg--system")).to_have_count(1, timeout=FIRST_ANSWER)

    (thread,) = await factories.threads(store)
    assert thread.inbox_id == b
    (message,) = await factories.messages(store, direction="in")
    assert message.text == "my invoice is wrong" and message.thread_id == thread.id
    reply = await client.post(f"/api/threads/{thread.id}/replies", json={"id": "r1", "text": "We are on it."})
    assert reply.status == 202, await reply.text()
    await expect(chat.locator(".msg--out", has_text="We are on it.")).to_be_visible()

    # the same browser on a page of inbox A: its widget, and none of B's conversation
    other = await context.new_page()
    await other.goto(f"{site}/?inbox={inboxes['Shop chat']}")
    await other.wait_for_function("() => document.querySelector('.omnirouter-panel iframe')")
    await other.locator(".omnirouter-launcher").click()
    shop = other.frame_locator(".omnirouter-panel iframe")
    await expect(shop.locator("h1")).to_have_text("Shop chat")
    await expect(shop.locator("#status")).to_have_text("Online")
    await expect(shop.locator(".msg")).to_have_count(0)
    await context.close()
    assert [t.inbox_id for t in await factories.threads(store)] == [b]
