"""The console's live socket lives no longer than the grant it was opened under: it closes within
seconds of a logout (on another router process sharing the store, too), the session's idle expiry,
the agent being disabled, and a change of the agent's role (after which the page reconnects under
the new role)."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bot.keys import STORE
from bot.services.agents import add_agent
from bot.tasks import stop_tasks
from bot.web.console.live import ConsoleHub, ConsoleSocket
from bot.web.keys import FIRST_ADMIN
from conversations.agent_models import Agent, Role
from tests.conftest import make_settings

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
PASSWORD = "correct horse battery"
SOON = 6.0  # seconds: the sockets are checked every two


def url(client: TestClient, path: str) -> str:
    return f"http://127.0.0.1:{client.server.port}{path}"


@pytest.fixture
async def routers(embedded: Any, db_name: str, start_client: Any) -> tuple[TestClient, TestClient]:
    """Two router processes' worth of application on one store."""
    settings = make_settings(embedded.uri, db_name)
    return await start_client(settings), await start_client(settings)


@pytest.fixture
async def browsers() -> AsyncIterator[list[aiohttp.ClientSession]]:
    opened: list[aiohttp.ClientSession] = []
    yield opened
    for browser in opened:
        await browser.close()


async def logged_in(
    browsers: list[aiohttp.ClientSession], client: TestClient, login: str, password: str
) -> aiohttp.ClientSession:
    browser = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    browsers.append(browser)
    page = await (await browser.get(url(client, "/login"))).text()
    response = await browser.post(
        url(client, "/login"),
        allow_redirects=False,
        data={"login": login, "password": password, "csrf_token": CSRF.search(page).group(1)},
    )  # type: ignore[union-attr]
    assert response.status == 303, await response.text()
    return browser


async def open_socket(browser: aiohttp.ClientSession, client: TestClient) -> aiohttp.ClientWebSocketResponse:
    """The console's socket, once the router has pushed the page's first refresh through it."""
    ws = await browser.ws_connect(url(client, "/console/ws"))
    first = await asyncio.wait_for(ws.receive(), 10)
    assert first.type == aiohttp.WSMsgType.TEXT, first
    return ws


async def closed_within(ws: aiohttp.ClientWebSocketResponse, seconds: float) -> tuple[int | None, float]:
    """Read until the router closes the socket; returns (close code, seconds it took)."""
    started = time.monotonic()
    async with asyncio.timeout(seconds):
        while True:
            message = await ws.receive()
            if message.type == aiohttp.WSMsgType.CLOSE:
                # the code the router sent, as a browser reports it: aiohttp's own close_code turns
                # 1006 when its close reply meets a connection the router has already ended
                return int(message.data), time.monotonic() - started
            if message.type in (aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED):
                return ws.close_code, time.monotonic() - started


async def csrf(browser: aiohttp.ClientSession, client: TestClient, path: str = "/console") -> str:
    return CSRF.search(await (await browser.get(url(client, path))).text()).group(1)  # type: ignore[union-attr]


async def new_agent(client: TestClient, login: str) -> Agent:
    agent, _ = await add_agent(client.server.app[STORE], "default", login, role=Role.AGENT, password=PASSWORD)
    assert agent is not None
    return agent


async def test_a_logout_on_another_router_closes_the_socket(
    routers: tuple[TestClient, TestClient], browsers: list[aiohttp.ClientSession]
) -> None:
    first, second = routers
    await new_agent(first, "ava")
    await new_agent(first, "bob")
    ava = await logged_in(browsers, first, "ava", PASSWORD)
    bob = await logged_in(browsers, first, "bob", PASSWORD)
    socket, bystander = await open_socket(ava, first), await open_socket(bob, first)
    # the same browser's cookie, sent to the other process, logs out there
    response = await ava.post(
        url(second, "/logout"), data={"csrf_token": await csrf(ava, second)}, allow_redirects=False
    )
    assert response.status == 303
    code, took = await closed_within(socket, SOON)
    assert code == 4401 and took < SOON
    assert not bystander.closed  # bob's session still holds: his socket stays


async def test_an_idle_session_expiring_closes_the_socket(
    routers: tuple[TestClient, TestClient], browsers: list[aiohttp.ClientSession]
) -> None:
    first, _ = routers
    agent = await new_agent(first, "ava")
    socket = await open_socket(await logged_in(browsers, first, "ava", PASSWORD), first)
    idle_since = int(time.time() * 1000) - 31 * 60_000  # the default idle limit is 30 minutes
    for session in await first.server.app[STORE].sign_in.agent_sessions(agent.id):
        await first.server.app[STORE].sign_in.touch_session(session.id, idle_since)
    code, _ = await closed_within(socket, SOON)
    assert code == 4401


async def changed_by_the_admin(
    browsers: list[aiohttp.ClientSession], routers: tuple[TestClient, TestClient], agent: Agent, **form: str
) -> None:
    """The install's admin (made by the first router), logged in on the second, saves ``agent`` on
    the Admin page with ``form`` (role, and ``active`` to keep the agent enabled)."""
    first, router = routers
    login, password = first.server.app[FIRST_ADMIN]  # type: ignore[misc]
    admin = await logged_in(browsers, router, login, password)
    response = await admin.post(
        url(router, f"/admin/agents/{agent.id}"),
        allow_redirects=False,
        data={"csrf_token": await csrf(admin, router, "/admin"), "teams": "", "capacity": "5", **form},
    )
    assert response.status == 303


async def test_disabling_the_agent_closes_the_socket(
    routers: tuple[TestClient, TestClient], browsers: list[aiohttp.ClientSession]
) -> None:
    first, _ = routers
    agent = await new_agent(first, "ava")
    socket = await open_socket(await logged_in(browsers, first, "ava", PASSWORD), first)
    await changed_by_the_admin(browsers, routers, agent, role="agent")
    code, _ = await closed_within(socket, SOON)
    assert code == 4401


async def test_a_role_change_closes_the_socket_and_the_page_reconnects_under_the_new_role(
    routers: tuple[TestClient, TestClient], browsers: list[aiohttp.ClientSession]
) -> None:
    first, _ = routers
    agent = await new_agent(first, "ava")
    ava = await logged_in(browsers, first, "ava", PASSWORD)
    socket = await open_socket(ava, first)
    await changed_by_the_admin(browsers, routers, agent, role="admin", active="on")
    code, _ = await closed_within(socket, SOON)
    assert code == 4403
    again = await open_socket(ava, first)  # the session still holds: a new socket, under the new role
    with pytest.raises(TimeoutError):
        await closed_within(again, 3.0)
    assert (await ava.get(url(first, "/admin"), allow_redirects=False)).status == 200


async def test_a_check_that_fails_unexpectedly_does_not_end_the_watch() -> None:
    """One check raising what nobody expected (not a store outage) is logged; the next check runs
    and still closes the socket whose session ended."""
    calls: list[int] = []

    async def ended(holders: list[tuple[str, str, str]]) -> dict[str, str]:
        calls.append(len(holders))
        if len(calls) == 1:
            raise ValueError("an answer the check did not expect")
        return {session_id: "signed out" for session_id, _, _ in holders}

    async def nothing(sock: ConsoleSocket, parts: set[str], notify: list[str]) -> str:
        return "<div></div>"

    hub = ConsoleHub(nothing)

    async def socket_route(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        sock = ConsoleSocket(ws, "default", "agt_1", None, "en", "csrf", session_id="s1", role="agent")
        return await hub.serve(request, sock)

    app = web.Application()
    app.router.add_get("/ws", socket_route)
    watch = asyncio.create_task(hub.watch(ended, 0.05))
    try:
        async with TestClient(TestServer(app)) as client:
            ws = await client.ws_connect("/ws")
            code, _ = await closed_within(ws, SOON)
            assert code == 4401 and len(calls) >= 2
    finally:
        watch.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watch


class SlowPage:
    """A console whose first render waits until ``release`` is set; the sockets it opened."""

    def __init__(self) -> None:
        self.rendering, self.release = asyncio.Event(), asyncio.Event()
        self.renders: list[bool] = []  # whether the page was seen, at each render's end
        self.opened: list[ConsoleSocket] = []
        self.hub = ConsoleHub(self.render, delay=0)
        self.app = web.Application()
        self.app.router.add_get("/ws", self.route)

    async def render(self, sock: ConsoleSocket, parts: set[str], notify: list[str]) -> str:
        self.rendering.set()
        await self.release.wait()
        self.renders.append(sock.visible)
        return "<div id='late'></div>"

    async def route(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        sock = ConsoleSocket(ws, "default", "agt_1", None, "en", "csrf", session_id="s1", role="agent", visible=True)
        self.opened.append(sock)
        return await self.hub.serve(request, sock)

    async def finished(self) -> asyncio.Task[None]:
        """Let the render go on; the flush task, once it ended by itself (not cancelled)."""
        flush = self.opened[-1].flushing
        assert flush is not None
        self.release.set()
        await asyncio.wait({flush}, timeout=SOON)
        assert flush.done() and not flush.cancelled()
        return flush


async def test_a_page_closed_while_its_update_renders_lets_the_render_finish_unseen() -> None:
    """The render of an update reads the store; a browser that leaves meanwhile must not cancel it
    there (a task cancelled inside a driver call is how a connection can be left half used), and
    the page, gone, is not taken as seen."""
    page = SlowPage()
    async with TestClient(TestServer(page.app)) as client:
        ws = await client.ws_connect("/ws")
        await asyncio.wait_for(page.rendering.wait(), SOON)
        await ws.close()
        async with asyncio.timeout(SOON):
            while page.hub.sockets:
                await asyncio.sleep(0.01)
        await page.finished()
        assert page.renders == [False]


async def test_a_session_ended_while_an_update_renders_gets_nothing_of_it_only_the_close() -> None:
    """Logout (or a role change) seen while the page's update renders under the old grant: the
    render finishes, and what it made never reaches the browser, which gets the close alone."""
    page = SlowPage()

    async def ended(holders: list[tuple[str, str, str]]) -> dict[str, str]:
        return {session_id: "signed out" for session_id, _, _ in holders}

    async with TestClient(TestServer(page.app)) as client:
        ws = await client.ws_connect("/ws")
        await asyncio.wait_for(page.rendering.wait(), SOON)
        watch = asyncio.create_task(page.hub.watch(ended, 0.01))
        try:
            async with asyncio.timeout(SOON):
                while page.hub.sockets:
                    await asyncio.sleep(0.01)
            await page.finished()
            message = await asyncio.wait_for(ws.receive(), SOON)
            assert message.type == aiohttp.WSMsgType.CLOSE and message.data == 4401, message
            assert page.renders == [False]
        finally:
            await stop_tasks([watch])
