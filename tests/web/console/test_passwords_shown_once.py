"""A new agent's password (and a new account's first admin's) is shown once in the page's body and
never travels in a URL, where browser history and proxy logs would keep it."""

from __future__ import annotations

import re
from html import unescape

from aiohttp.test_utils import TestClient

from bot.web.keys import FIRST_ADMIN
from tests.web.console.test_console import console_csrf, log_in

REVEALED = re.compile(r'id="revealed-value" value="([^"]+)"')


async def test_passwords_of_new_logins_are_in_the_page_body_once_and_in_no_url(client: TestClient) -> None:
    login, password = client.server.app[FIRST_ADMIN]  # type: ignore[misc]
    await log_in(client, login, password)
    urls: list[str] = []
    for path, form in (
        ("/admin/agents", {"login": "newbie", "role": "agent", "capacity": "3"}),
        ("/admin/accounts", {"id": "shop9", "name": "Shop nine", "admin": "boss"}),
    ):
        token = await console_csrf(client, path if path == "/admin/accounts" else "/admin")
        response = await client.post(path, data={**form, "csrf_token": token}, allow_redirects=False)
        urls += [str(response.url), response.headers.get("Location", "")]
        body = await response.text()
        assert response.status == 200, (path, response.status, response.headers.get("Location"))
        found = REVEALED.search(body)
        assert found is not None, body[:2000]
        secret = unescape(found.group(1))
        assert len(secret) >= 12 and body.count(found.group(1)) == 1
        assert not any(secret in url for url in urls)
        assert secret not in await (await client.get("/admin")).text()  # and not again
        client.session.cookie_jar.clear()
        account = "shop9" if path == "/admin/accounts" else "default"
        new_login = "boss" if path == "/admin/accounts" else "newbie"
        page = await (await client.get("/login")).text()
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
        logged_in = await client.post(
            "/login",
            allow_redirects=False,
            data={"account": account, "login": new_login, "password": secret, "csrf_token": csrf},
        )
        assert logged_in.status == 303, await logged_in.text()
        client.session.cookie_jar.clear()
        await log_in(client, login, password)
