"""CSRF over every state-changing console route, enumerated from the application's router (as the
authorisation matrix does): a request without the session's token, with another session's token,
or that a browser marks as coming from another site (``Sec-Fetch-Site``, ``Origin``) is refused
and changes nothing; the same request from the page itself goes through. Plus the login form and
the console's socket."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp

from bot.keys import STORE
from bot.web.keys import FIRST_ADMIN
from conversations.agent_models import Role
from conversations.models import utcnow
from tests.conftest import raw_database_of
from tests.web.console.test_console import log_in
from tests.web.test_authorisation import (
    CONSOLE_FORMS,
    CSRF,
    GRIDFS,
    QUERIES,
    World,
    _fill,
    build_world,
    filled,
    guarded_routes,
)

EVIL = "http://evil.example"
UNCHANGING = ("sessions", "login_failures")  # a refused request may still refresh its session's last-seen time


async def snapshot(world: World) -> dict[str, list[Any]]:
    db = raw_database_of(world.client.server.app[STORE])  # every collection: a forged request changes none
    return {
        name: await db[name].find({}).sort("_id").to_list()
        for name in sorted(await db.list_collection_names())
        if name not in UNCHANGING and name not in GRIDFS
    }


async def csrf_of(world: World, who: str) -> str:
    page = await (await world.sessions[who].get(f"{world.base}/console")).text()
    return CSRF.search(page).group(1)  # type: ignore[union-attr]


async def post(
    world: World, who: str, method: str, template: str, token: str | None, headers: dict[str, str] | None = None
) -> tuple[int, str]:
    form = filled(CONSOLE_FORMS.get((method, template), {}), world.samples)
    if token is not None:
        form["csrf_token"] = token
    url = world.base + _fill(template, world.samples) + _fill(QUERIES.get((method, template), ""), world.samples)
    async with world.sessions[who].request(
        method, url, data=form, headers=headers or {}, allow_redirects=False
    ) as response:
        return response.status, await response.text()


async def background_work_done(world: World) -> None:
    """Wait for what a request that went through started in the background (a training job
    writes its progress, then the model and an audit entry; a campaign sent at once stores its
    messages and the outbox sends them), so the next snapshots hold still."""
    store = world.client.server.app[STORE]
    database = raw_database_of(store)  # whatever account the work is of

    async def busy() -> bool:
        return bool(
            await database.nlu_jobs.find_one({"state": "running"})
            or await store.campaigns.due_campaigns(utcnow())
            or await database.messages.find_one({"send.state": "pending"})
        )

    async with asyncio.timeout(120):
        while await busy():
            await asyncio.sleep(0.1)


async def test_every_state_changing_console_route_refuses_forged_requests(
    embedded: Any, db_name: str, start_client: Any
) -> None:
    world = await build_world(embedded, db_name, start_client)
    try:
        routes = [
            (m, t, a)
            for m, t, a in guarded_routes(world.client.server.app)
            if a.kind == "session" and m not in ("GET", "HEAD")
        ]
        assert len(routes) >= 20, routes  # the console has this many forms; fewer means routes went missing
        own = {who: await csrf_of(world, who) for who in ("admin", "agent", "superadmin")}
        problems: list[str] = []
        for method, template, access in routes:
            who = "superadmin" if access.role == Role.SUPERADMIN else "admin"
            forgeries = {
                "no token": (None, {}),
                "an empty token": ("", {}),
                "another session's token": (own["agent"] if who == "admin" else own["admin"], {}),
                "the token in the wrong case": (own[who].swapcase(), {}),
                "Sec-Fetch-Site: cross-site": (own[who], {"Sec-Fetch-Site": "cross-site"}),
                "Sec-Fetch-Site: same-site": (own[who], {"Sec-Fetch-Site": "same-site"}),
                "Origin from elsewhere": (own[who], {"Origin": EVIL}),
                "Origin null": (own[who], {"Origin": "null"}),
            }
            before = await snapshot(world)
            for name, (token, headers) in forgeries.items():
                status, _ = await post(world, who, method, template, token, headers)
                if status != 403:
                    problems.append(f"{method} {template} with {name}: {status}")
            if await snapshot(world) != before:
                problems.append(f"{method} {template}: a forged request changed the store")
            # the page itself (same origin, its own token) gets through the guard
            status, body = await post(
                world, who, method, template, own[who], {"Sec-Fetch-Site": "same-origin", "Origin": world.base}
            )
            if status in (401, 403) or status >= 500:
                problems.append(f"{method} {template} from the page itself: {status} {body[:100]}")
            await background_work_done(world)
        assert not problems, "\n".join(problems)
    finally:
        for session in world.sessions.values():
            await session.close()


async def test_cross_site_logins_and_sockets_are_refused(client: Any) -> None:
    login, password = client.server.app[FIRST_ADMIN]
    page = await (await client.get("/login")).text()
    token = CSRF.search(page).group(1)  # type: ignore[union-attr]
    form = {"login": login, "password": password, "csrf_token": token}
    for headers in ({"Sec-Fetch-Site": "cross-site"}, {"Origin": EVIL}):
        refused = await client.post("/login", data=form, headers=headers, allow_redirects=False)
        assert refused.status == 403 and "omnirouter_session" not in refused.cookies
    assert (await log_in(client, login, password)).status == 303
    for headers in ({"Origin": EVIL}, {"Sec-Fetch-Site": "cross-site"}):
        try:
            async with client.ws_connect("/console/ws", headers=headers):
                raise AssertionError(f"a cross-site socket was opened with {headers}")
        except aiohttp.WSServerHandshakeError as refused:
            assert refused.status == 403
    async with client.ws_connect("/console/ws", headers={"Origin": f"http://127.0.0.1:{client.server.port}"}) as ws:
        assert 'id="queue"' in await ws.receive_str(timeout=10)
