"""/api from a browser: only ``Authorization: Bearer`` authenticates it, which no page of another
site can make a browser send — so a cross-site ``text/plain`` POST (a form, or ``fetch`` in
``no-cors`` mode) is refused and changes nothing, on the same machine as the router too. (A page
whose own name is made to resolve to the router — DNS rebinding — is refused by the Host check:
``tests/web/test_hosts.py``.)"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from playwright.async_api import Browser

from bot.keys import STORE
from tests.conftest import anonymous, make_settings
from tests.router.test_queue import customer_writes

pytestmark = pytest.mark.browser  # the `browser` fixture is in tests/web/conftest.py


async def tokenless_router(embedded: Any, db_name: str, start_client: Any, tmp_path: Path) -> TestClient:
    """A router on 127.0.0.1 of an install without ``api.token`` (it made its own token)."""
    settings = make_settings(embedded.uri, db_name, api={"token": "", "token_file": str(tmp_path / "api.token")})
    client: TestClient = await start_client(settings)
    return client


async def test_a_cross_site_text_plain_post_is_refused_and_changes_nothing(
    embedded: Any, db_name: str, start_client: Any, tmp_path: Path
) -> None:
    client = await tokenless_router(embedded, db_name, start_client, tmp_path)
    thread_id = await customer_writes(client.server.app, "tom")
    cross_site = {
        "Origin": "http://evil.example",
        "Sec-Fetch-Site": "cross-site",
        "Sec-Fetch-Mode": "no-cors",
        "Content-Type": "text/plain;charset=UTF-8",
    }
    async with anonymous(client) as browser_like:
        for path, body in (
            (f"/api/threads/{thread_id}/resolve", "x"),
            ("/api/accounts", json.dumps({"id": "evil", "name": "Evil"})),
        ):
            response = await browser_like.post(path, data=body, headers=cross_site)
            assert response.status == 401 and (await response.json())["error"] == "unauthorized"
    store = client.server.app[STORE]
    assert (await store.threads.get_thread(thread_id)).status == "queued"  # type: ignore[union-attr]
    assert await store.accounts.get_account("evil") is None


PAGE = """<!doctype html><title>loading</title><script>
const router = %(router)s;
const posts = [
  fetch(router + "/api/threads/%(thread)s/resolve", {method: "POST", body: "x", mode: "no-cors"}),
  fetch(router + "/api/threads/%(thread)s/resolve", {method: "POST", body: "x", mode: "no-cors", credentials: "include"}),
  fetch(router + "/api/accounts", {method: "POST", mode: "no-cors", headers: {"Content-Type": "text/plain"},
                                   body: JSON.stringify({id: "evil", name: "Evil"})}),
];
Promise.allSettled(posts).then(results => { document.title = results.map(r => r.status).join(","); });
</script>"""


async def test_a_page_of_another_origin_on_this_machine_changes_nothing_through_the_api(
    embedded: Any, db_name: str, start_client: Any, tmp_path: Path, browser: Browser
) -> None:
    client = await tokenless_router(embedded, db_name, start_client, tmp_path)
    thread_id = await customer_writes(client.server.app, "tina")
    router = f"http://127.0.0.1:{client.server.port}"

    async def evil_page(request: web.Request) -> web.Response:
        return web.Response(text=PAGE % {"router": json.dumps(router), "thread": thread_id}, content_type="text/html")

    other = web.Application()
    other.router.add_get("/", evil_page)
    async with TestServer(other, host="127.0.0.1") as site:  # another port: another origin
        context = await browser.new_context()
        page = await context.new_page()
        await page.goto(str(site.make_url("/")))
        await page.wait_for_function("document.title !== 'loading'", timeout=15_000)
        assert await page.title() == "fulfilled,fulfilled,fulfilled"  # each reached the router and was answered
        await context.close()
    store = client.server.app[STORE]
    assert (await store.threads.get_thread(thread_id)).status == "queued"  # type: ignore[union-attr]
    assert await store.accounts.get_account("evil") is None
