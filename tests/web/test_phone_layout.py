"""Every console and admin page at a phone's width (390 px, Chromium): nothing is wider than the
screen, so nothing scrolls sideways. The pages come from the router's own routes, so a new page is
measured without anyone adding it here."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient
from playwright.async_api import Browser, expect

from bot.keys import PIPELINE
from bot.web.keys import FIRST_ADMIN
from tests.router.test_inbound import webchat_inbound
from tests.web.console.test_console_browser import log_in_page

pytestmark = pytest.mark.browser
PHONE = {"width": 390, "height": 844}
NOT_PAGES = (
    ".csv",
    ".json",
    ".js",
    ".svg",
    ".yml",
    ".ico",
    "/ws",
    "/healthz",
    "/metrics",
    "/logout",
    "/chat/words",
    "/config",
)


def pages(client: TestClient) -> list[str]:
    """The HTML pages an agent or admin opens: every GET route but files, sockets and probes."""
    found = set()
    for route in client.server.app.router.routes():
        path = route.resource.canonical if route.resource else ""
        if route.method != "GET" or "{" in path or path.startswith(("/api", "/static", "/webhooks", "/webchat")):
            continue
        if not path.endswith(NOT_PAGES) and path != "/":
            found.add(path)
    return sorted(found)


async def widest(page: object, url: str) -> int:
    await page.goto(url)  # type: ignore[attr-defined]
    return int(await page.evaluate("document.documentElement.scrollWidth"))  # type: ignore[attr-defined]


async def test_no_page_scrolls_sideways_on_a_phone(client: TestClient, browser: Browser) -> None:
    base = f"http://127.0.0.1:{client.server.port}"
    recorded, task = await client.server.app[PIPELINE].receive(webchat_inbound("p-1", "a question " * 30))
    assert task is not None
    await task
    login, password = client.server.app[FIRST_ADMIN]  # type: ignore[misc]
    context = await browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    anonymous = await context.new_page()
    too_wide = {url: w for url in (f"{base}/login", f"{base}/chat") if (w := await widest(anonymous, url)) > 390}
    page = await log_in_page(await context.new_page(), base, login, password)
    urls = [f"{base}{path}" for path in pages(client) if path not in ("/login", "/chat")]
    urls.append(f"{base}/console?thread={recorded.thread.id}")
    urls.append(f"{base}/console/contacts/{recorded.thread.contact_id}/merge?q=a")  # the merge search
    assert len(urls) >= 14, urls
    for url in urls:
        if (width := await widest(page, url)) > 390:
            too_wide[url.removeprefix(base)] = width
    assert too_wide == {}, sorted(too_wide.items())

    await page.goto(f"{base}/console?thread={recorded.thread.id}")  # one pane at a time
    await expect(page.locator(".lists")).to_be_hidden()
    await page.click("#back-to-list")
    await expect(page.locator(".lists")).to_be_visible()
    await expect(page.locator("#back-to-list")).to_have_count(0)
    await context.close()
