"""Console logins: argon2id password hashes, sessions, CSRF tokens and login rate limits.

* A session id is 32 random bytes in an ``HttpOnly; SameSite=Strict`` cookie (``Secure`` behind
  HTTPS); the store keeps only its SHA-256. Each login issues a new id (and drops the old one),
  so a planted id is worthless. Sessions end after ``console.session_idle_minutes`` without a
  request and after ``console.session_max_hours`` in any case.
* Every state-changing request carries the session's CSRF token (form field ``csrf_token`` or
  header ``X-CSRF-Token``); the login form, before any session exists, a double-submit token.
* A state-changing request (and the console's socket) that a browser says comes from another
  site (``Sec-Fetch-Site``, or else an ``Origin`` other than this router's) is refused before
  anything else: defence in depth beside the token and the ``SameSite`` cookie.
* A session records whether its login passed a second factor; one that did not is refused (and
  deleted) while its account requires two-factor sign-in, whenever the requirement was set.
* Login attempts are throttled in ``bot/web/console/login_throttle.py``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from aiohttp import web

from bot.keys import SETTINGS, STORE
from bot.settings import ConsoleSettings
from conversations.agent_models import Agent, Session
from conversations.membership import grant_of

if TYPE_CHECKING:
    from conversations.repositories import Repositories

SESSION_COOKIE = "omnirouter_session"
LOGIN_COOKIE = "omnirouter_login"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def token_digest(token: str) -> str:
    """What the store keeps of a cookie's random token (a session's, a login challenge's)."""
    return hashlib.sha256(token.encode()).hexdigest()


def _secure(request: web.Request) -> bool:
    return request.secure or request.app[SETTINGS].server.public_url.startswith("https://")


def set_cookie(
    response: web.StreamResponse,
    request: web.Request,
    name: str,
    value: str,
    max_age: int | None = None,
    path: str = "/",
) -> None:
    response.set_cookie(
        name, value, httponly=True, samesite="Strict", secure=_secure(request), path=path, max_age=max_age
    )


async def start_session(
    request: web.Request, response: web.StreamResponse, agent: Agent, second_factor: bool = False
) -> Session:
    """Log ``agent`` in (with a second factor or not): drop any session the browser had, issue a
    fresh id."""
    store = request.app[STORE]
    old = request.cookies.get(SESSION_COOKIE)
    if old:
        await store.sign_in.delete_session(token_digest(old))
    token = secrets.token_urlsafe(32)
    now_ms = int(time.time() * 1000)
    session = Session(
        id=token_digest(token),
        account_id=agent.account_id,
        agent_id=agent.id,
        csrf=secrets.token_urlsafe(32),
        created_ms=now_ms,
        seen_ms=now_ms,
        second_factor=second_factor,
    )
    await store.sign_in.create_session(session)
    set_cookie(response, request, SESSION_COOKIE, token)
    response.del_cookie(LOGIN_COOKIE, path="/")
    return session


async def end_session(request: web.Request, response: web.StreamResponse) -> None:
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        await request.app[STORE].sign_in.delete_session(token_digest(token))
    response.del_cookie(SESSION_COOKIE, path="/")


async def current(request: web.Request) -> tuple[Session, Agent] | None:
    """The request's live session and its agent, or ``None`` (expired sessions are deleted)."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    store = request.app[STORE]
    session = await store.sign_in.get_session(token_digest(token))
    if session is None:
        return None
    settings = request.app[SETTINGS].console
    now_ms = int(time.time() * 1000)
    if expired(session, settings, now_ms):
        await store.sign_in.delete_session(session.id)
        return None
    agent = await store.agents.get_agent(session.agent_id)
    if (
        agent is None
        or not agent.active
        or (not session.second_factor and await store.sign_in.accounts_requiring_second_factor([session.account_id]))
    ):
        await store.sign_in.delete_session(session.id)
        return None
    if now_ms - session.seen_ms > min(30_000, settings.session_idle_minutes * 60_000 / 4):
        await store.sign_in.touch_session(session.id, now_ms)
    return session, agent


def expired(session: Session, settings: ConsoleSettings, now_ms: int) -> bool:
    """Idle for ``session_idle_minutes``, or older than ``session_max_hours``."""
    return (
        now_ms - session.seen_ms > settings.session_idle_minutes * 60_000
        or now_ms - session.created_ms > settings.session_max_hours * 3_600_000
    )


async def ended_sessions(
    store: Repositories, settings: ConsoleSettings, holders: list[tuple[str, str, str]]
) -> dict[str, str]:
    """Which of the ``(session id, agent id, role)`` that open console sockets were granted no longer
    hold, and why (``signed out`` — logged out, expired, agent disabled, no second factor where the
    account now requires one — or ``role changed``): the sockets' check, two reads however many
    there are (three when some sessions passed no second factor)."""
    sessions = {s.id: s for s in await store.sign_in.sessions_by_ids(sorted({h[0] for h in holders}))}
    agents = {a.id: a for a in await store.agents.agents_by_ids(sorted({h[1] for h in holders}))}
    password_only = sorted({s.account_id for s in sessions.values() if not s.second_factor})
    requiring = await store.sign_in.accounts_requiring_second_factor(password_only) if password_only else set()
    now_ms, ended = int(time.time() * 1000), {}
    for session_id, agent_id, role in holders:
        session, agent = sessions.get(session_id), agents.get(agent_id)
        if (
            session is None
            or expired(session, settings, now_ms)
            or agent is None
            or not agent.active
            or (not session.second_factor and session.account_id in requiring)
        ):
            ended[session_id] = "signed out"
        elif grant_of(agent) != role:  # the role, or the inboxes of an agent of some inboxes
            ended[session_id] = "role changed"
    return ended


async def csrf_ok(request: web.Request, expected: str) -> bool:
    given = request.headers.get("X-CSRF-Token", "")
    if not given and request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        given = str((await request.post()).get("csrf_token", ""))
    return bool(given) and hmac.compare_digest(given.encode(), expected.encode())


def cross_site(request: web.Request) -> bool:
    """Whether the browser says this request was made by another site's page. Browsers send
    ``Sec-Fetch-Site`` (scripts cannot forge it); older ones only ``Origin``. Clients that send
    neither (curl, the API's users) are not browsers riding a session and pass."""
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if fetch_site is not None:
        return fetch_site not in ("same-origin", "none")
    origin = request.headers.get("Origin")
    if origin is None:
        return False
    ours = {f"http://{request.host}", f"https://{request.host}"}
    public = urlsplit(request.app[SETTINGS].server.public_url)
    if public.netloc:
        ours.add(f"{public.scheme}://{public.netloc}")
    return origin.lower() not in {address.lower() for address in ours}


def login_csrf(request: web.Request) -> str:
    """The double-submit token of the login form (the cookie's, or a fresh one)."""
    return request.cookies.get(LOGIN_COOKIE) or secrets.token_urlsafe(24)
