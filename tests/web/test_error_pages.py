"""Unknown addresses: a page in the reader's language for a browser, JSON for API clients."""

from __future__ import annotations

from aiohttp.test_utils import TestClient

from bot.keys import STORE
from bot.services.agents import add_agent
from conversations.agent_models import Role
from tests.web.console.test_console import console_csrf, log_in

HTML = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}


async def test_a_browser_gets_a_page_with_the_way_to_the_login(client: TestClient) -> None:
    response = await client.get("/no/such/page", headers=HTML)
    assert response.status == 404 and response.content_type == "text/html"
    text = await response.text()
    assert "There is no page at this address." in text and 'href="/login"' in text
    assert "/no/such/page" in text and "default-src 'none'" in response.headers["Content-Security-Policy"]
    latvian = await client.get("/console/nothing-here", headers=HTML, params={"lang": "lv"})
    assert latvian.status == 404 and "Šajā adresē nav lapas." in await latvian.text()


async def test_a_signed_in_agent_is_led_back_to_the_console_in_their_language(client: TestClient) -> None:
    _, password = await add_agent(client.server.app[STORE], "default", "ava", name="Ava", role=Role.AGENT)
    await log_in(client, "ava", password)
    token = await console_csrf(client)
    await client.post("/console/lang", data={"lang": "ru", "csrf_token": token}, allow_redirects=False)
    response = await client.get("/console/no-such-tab", headers=HTML)
    assert response.status == 404
    text = await response.text()
    assert "Вернуться в консоль" in text and 'href="/console"' in text and "Ava" in text


async def test_a_wrong_method_in_a_browser_is_a_page_too(client: TestClient) -> None:
    response = await client.get("/console/lang", headers=HTML)
    assert response.status == 405 and response.content_type == "text/html"
    assert "This address cannot be opened this way." in await response.text()


async def test_api_clients_keep_the_json(client: TestClient) -> None:
    under_api = await client.get("/api/no-such-thing", headers=HTML)
    assert under_api.status == 404 and await under_api.json() == {
        "error": "not_found",
        "detail": "no route for GET /api/no-such-thing",
    }
    no_html = await client.get("/no/such/page", headers={"Accept": "application/json"})
    assert no_html.status == 404 and (await no_html.json())["error"] == "not_found"
    wrong = await client.delete("/console/lang", headers={"Accept": "*/*"})
    assert wrong.status == 405 and (await wrong.json())["error"] == "method_not_allowed"
