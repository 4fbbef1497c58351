"""The icon in the browser's tab: one SVG from this origin, linked by every page and at the address
browsers ask for by themselves."""

from __future__ import annotations

from aiohttp.test_utils import TestClient

LINK = '<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">'


async def test_the_icon_is_served_as_svg(client: TestClient) -> None:
    for path in ("/favicon.ico", "/static/favicon.svg"):
        response = await client.get(path)
        assert response.status == 200 and response.content_type == "image/svg+xml", path
        assert (await response.text()).startswith("<svg")


async def test_the_console_and_the_web_chat_link_it(client: TestClient) -> None:
    login = await client.get("/login")
    assert LINK in await login.text()
    assert "img-src 'self'" in login.headers["Content-Security-Policy"]  # the policy allows it
    assert LINK in await (await client.get("/chat")).text()
