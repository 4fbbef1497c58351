"""The web chat page in Debian's headless Chromium, driven by Playwright."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp.test_utils import TestClient, TestServer
from playwright.async_api import Browser, Route, expect

from bot.app import create_app
from bot.keys import STORE
from bot.settings import Settings
from conversations.embedded import free_port
from tests import factories

pytestmark = pytest.mark.browser  # the `browser` fixture is in tests/web/conftest.py


async def test_a_customer_chats_and_finds_the_conversation_after_a_reload(client: TestClient, browser: Browser) -> None:
    context = await browser.new_context()
    page = await context.new_page()
    base = f"http://127.0.0.1:{client.server.port}"
    await page.goto(f"{base}/chat")
    await expect(page.locator("#empty")).to_contain_text("Ask us anything")
    await expect(page.locator("#status")).to_have_text("Online")

    await page.fill("#text", "<b>where</b> is my order?")
    await page.keyboard.press("Enter")
    await expect(page.locator(".msg--in")).to_have_text("<b>where</b> is my order?")  # shown as text
    await expect(page.locator(".msg--system")).to_contain_text("A member of our team will reply")
    await expect(page.locator(".msg--in .msg__meta")).to_have_count(0)  # acknowledged
    assert await page.locator(".msg--in b").count() == 0  # customer HTML never rendered

    await page.reload()
    await expect(page.locator(".msg")).to_have_count(2)
    await expect(page.locator("#empty")).to_be_hidden()
    await page.fill("#text", "anyone there?")
    await page.click("#send")
    await expect(page.locator(".msg--in")).to_have_count(2)
    await expect(page.locator(".msg--in .msg__meta")).to_have_count(0)  # both acknowledged
    await context.close()

    store = client.server.app[STORE]
    assert len(await factories.threads(store)) == 1
    assert len(await factories.messages(store, direction="in")) == 2
    assert len(await factories.outbox(store)) == 1


async def test_a_message_written_while_the_page_still_loads_its_script_is_sent(
    client: TestClient, browser: Browser
) -> None:
    """On a slow connection the composer is on screen before chat.js has run: it stays disabled
    until then, so what the visitor writes is not a stray line break in a box nothing reads (nor a
    click on Send that reloads the page with the text in its URL)."""
    context = await browser.new_context()
    page = await context.new_page()
    script_asked = asyncio.Event()

    async def slow_script(route: Route) -> None:
        script_asked.set()
        await asyncio.sleep(1.5)
        await route.continue_()

    await page.route("**/static/chat.js", slow_script)
    base = f"http://127.0.0.1:{client.server.port}"
    loading = asyncio.create_task(page.goto(f"{base}/chat"))
    await script_asked.wait()
    await expect(page.locator("#text")).to_be_disabled()
    await page.fill("#text", "is my order on its way?")  # waits for the composer to be enabled
    await page.keyboard.press("Enter")
    await loading
    await expect(page.locator(".msg--system")).to_contain_text("A member of our team will reply")
    assert "is my order" not in page.url
    await context.close()
    assert [m.text for m in await factories.messages(client.server.app[STORE], direction="in")] == [
        "is my order on its way?"
    ]


async def test_messages_typed_while_the_router_restarts_are_sent_once_it_is_back(
    settings: Settings, browser: Browser
) -> None:
    port = free_port()
    first = TestServer(create_app(settings), port=port)
    await first.start_server()
    context = await browser.new_context()
    page = await context.new_page()
    await page.goto(f"http://127.0.0.1:{port}/chat")
    await expect(page.locator("#status")).to_have_text("Online")

    await first.close()  # the router goes away (a deploy, a crash)
    await expect(page.locator("#status")).to_have_text("Offline — reconnecting")
    await page.fill("#text", "typed while you were away")
    await page.keyboard.press("Enter")
    await expect(page.locator(".msg--in .msg__meta")).to_have_text("sending…")

    second = TestServer(create_app(settings), port=port)  # back, on the same store
    await second.start_server()
    try:
        await expect(page.locator(".msg--in .msg__meta")).to_have_count(0, timeout=20_000)
        await expect(page.locator(".msg--system")).to_have_count(1)
        await expect(page.locator(".msg--in")).to_have_count(1)
        inbound = await factories.messages(second.app[STORE], direction="in")
        assert [m.text for m in inbound].count("typed while you were away") == 1
    finally:
        await context.close()
        await second.close()


@pytest.mark.parametrize(
    ("locale", "query", "lang", "ask", "online", "placeholder"),
    [
        ("ru-RU", "", "ru", "Спросите нас о чём угодно.", "В сети", "Напишите сообщение…"),
        ("en-US", "?lang=lv", "lv", "Jautājiet mums jebko.", "Tiešsaistē", "Rakstiet ziņu…"),
    ],
)
async def test_the_chat_page_speaks_the_visitors_language(
    client: TestClient, browser: Browser, locale: str, query: str, lang: str, ask: str, online: str, placeholder: str
) -> None:
    """The browser's language (Accept-Language), or the page's ?lang=, picks the page's words."""
    context = await browser.new_context(locale=locale)
    page = await context.new_page()
    await page.goto(f"http://127.0.0.1:{client.server.port}/chat{query}")
    await expect(page.locator("#empty strong")).to_have_text(ask)
    await expect(page.locator("#status")).to_have_text(online)
    await expect(page.locator("#text")).to_have_attribute("placeholder", placeholder)
    await expect(page.locator("html")).to_have_attribute("lang", lang)
    await page.fill("#text", "hello")
    await page.keyboard.press("Enter")
    await expect(page.locator(".msg--in .msg__meta")).to_have_count(0)  # sent and acknowledged as before
    await context.close()
