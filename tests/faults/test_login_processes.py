"""Login throttling across real `omnirouter serve` processes on one store: the failures counted by
one process make the login wait on the other, the right password included."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import aiohttp

from tests.faults.harness import Router

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
LIMITS = {
    "OMNIROUTER_CONSOLE_LOGIN_ATTEMPTS": "3",
    "OMNIROUTER_CONSOLE_LOGIN_DELAY_SECONDS": "60",
    "OMNIROUTER_CONSOLE_LOGIN_MAX_DELAY_SECONDS": "600",
    "OMNIROUTER_SERVER_PUBLIC_URL": "",
}  # plain HTTP, so this client may send the (not Secure) cookies back


async def first_admin_password(router: Router) -> str:
    """The password `serve` gives once on a fresh install (in a 0600 file: its output is a log)."""
    secret = router.workdir / "var" / "first-admin.txt"
    for _ in range(100):
        if secret.exists() and "password: " in secret.read_text():
            return secret.read_text().split("password: ", 1)[1].strip()
        await asyncio.sleep(0.1)
    raise AssertionError(f"no first-run password in {secret}: {router.log()[-1000:]}")


async def attempt(router: Router, password: str) -> tuple[int, int]:
    """A fresh browser's login as ``admin``; returns ``(status, Retry-After or 0)``."""
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as browser:
        page = await (await browser.get(f"{router.url}/login")).text()
        token = CSRF.search(page).group(1)  # type: ignore[union-attr]
        async with browser.post(
            f"{router.url}/login",
            allow_redirects=False,
            data={"login": "admin", "password": password, "csrf_token": token},
        ) as response:
            return response.status, int(response.headers.get("Retry-After", "0"))


async def test_failures_on_one_process_make_the_login_wait_on_another(routers: Any) -> None:
    first = await routers(**LIMITS)
    password = await first_admin_password(first)
    second = await routers(**LIMITS)
    assert (await attempt(second, password))[0] == 303  # the right password works, before any failure
    assert [(await attempt(first, "wrong"))[0] for _ in range(2)] == [401, 401]
    assert (await attempt(second, "wrong"))[0] == 401
    for router in (second, first):
        status, wait = await attempt(router, password)
        assert status == 429 and 0 < wait <= 60, (router.url, status)
