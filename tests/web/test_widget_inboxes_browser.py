"""Two web chat inboxes of one account in Debian's headless Chromium: a business's site (another
origin) embeds the widget of inbox B (``data-inbox``); it opens in B's look, and what the visitor
writes lands in inbox B. The same browser on a page with inbox A's widget is a stranger there."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from playwright.async_api import Browser, BrowserContext, FrameLocator, expect

from bot.keys import STORE
from conversations.embedded import free_port
from conversations.models import utcnow
from tests import factories
from tests.web.test_widget_browser import FIRST_ANSWER, PRECHAT, allow, open_chat

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


async def opened(context: BrowserContext, address: str) -> FrameLocator:
    """A new page of the site at ``address``, its widget opened: the chat's frame."""
    page = await context.new_page()
    await page.goto(address)
    return await open_chat(page)


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
    chat = await opened(context, f"{site}/?inbox={b}")
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
    shop = await opened(context, f"{site}/?inbox={inboxes['Shop chat']}")
    await expect(shop.locator("h1")).to_have_text("Shop chat")
    await expect(shop.locator("#status")).to_have_text("Online")
    await expect(shop.locator(".msg")).to_have_count(0)
    await context.close()
    assert [t.inbox_id for t in await factories.threads(store)] == [b]


async def test_inbox_b_asks_its_own_pre_chat_form_and_the_first_web_chat_the_accounts(
    client: TestClient, site: str, browser: Browser
) -> None:
    await allow(client, site, prechat=PRECHAT)  # the account's form: name, e-mail and consent
    store = client.server.app[STORE]
    own = {"enabled": True, "name": False, "email": False, "phone": True, "consent": False, "privacy_url": ""}
    b = await store.inboxes.create_inbox(
        "default", "webchat", "Support chat", {"sites": site, "prechat": own}, utcnow(), None
    )
    assert b is not None

    context = await browser.new_context()
    chat = await opened(context, f"{site}/?inbox={b.id}")
    await expect(chat.locator("#prechat")).to_be_visible()
    await expect(chat.locator("#prechat-phone")).to_be_visible()
    for field in ("#prechat-name", "#prechat-email", "#prechat-consent"):
        await expect(chat.locator(field)).to_be_hidden()
    await chat.locator("#prechat-phone").fill("+371 2000 0000")
    await chat.locator("#prechat button[type=submit]").click()
    await expect(chat.locator("#prechat")).to_be_hidden()
    await expect(chat.locator("#composer")).to_be_visible()

    first = await opened(context, f"{site}/?inbox=")  # the account's first web chat: the account's form
    await expect(first.locator("#prechat")).to_be_visible()
    for field in ("#prechat-name", "#prechat-email", "#prechat-consent"):
        await expect(first.locator(field)).to_be_visible()
    await expect(first.locator("#prechat-phone")).to_be_hidden()
    await context.close()
    assert await store.contacts.contact_by_identity("default", "phone", "+37120000000") is not None
