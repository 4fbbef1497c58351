"""Server-rendered console pages: the template environment, the sign-in guard, the security
headers every console page carries, and the page a browser gets for an unknown address.

Templates are Jinja2 with autoescaping on: whatever a customer wrote is escaped text, never
markup. Pages are served with a strict Content-Security-Policy (scripts, styles and sockets from
this origin only, no inline code, no frames), so even a slip in escaping could not run script.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp_jinja2
import jinja2
from aiohttp import web

from bot.handlers.kit.media import megabytes
from bot.keys import SETTINGS
from bot.web.access import Access, mark
from bot.web.codes import word_filter
from bot.web.console import auth
from bot.web.i18n import LANGUAGE_NAMES, pick_language, template_words, translate
from conversations.agent_models import Agent, Role, Session
from conversations.errors import StoreUnavailable
from conversations.models import from_epoch_ms

TEMPLATES = Path(__file__).resolve().parent / "templates"
# per-request state: typed keys where aiohttp has them (3.14+), plain names before
AGENT: Any = web.RequestKey("agent", Agent) if hasattr(web, "RequestKey") else "omnirouter.agent"
SESSION: Any = web.RequestKey("session", Session) if hasattr(web, "RequestKey") else "omnirouter.session"

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "font-src 'self'; media-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}
_GUARDED = ("/console", "/admin", "/login", "/logout")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def setup_templates(app: web.Application) -> None:
    env = aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        extensions=["jinja2.ext.i18n"],
    )
    env.globals["console_languages"] = LANGUAGE_NAMES
    # every time shown says its zone: the store keeps UTC, and so do the pages
    env.filters["hm"] = lambda moment: moment.strftime("%H:%M UTC") if moment else ""
    env.filters["stamp"] = lambda moment: moment.strftime("%Y-%m-%d %H:%M UTC") if moment else ""
    env.filters["word"] = word_filter  # a stored code as words: {{ thread.status | word("status") }}
    env.filters["ms_stamp"] = lambda ms: from_epoch_ms(ms).strftime("%Y-%m-%d %H:%M UTC") if ms else "—"
    app.middlewares.append(error_pages)
    app.middlewares.append(security_headers)


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    response = await handler(request)
    if request.path.startswith(_GUARDED) and not response.prepared:
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
    return response


_ERROR_PAGES = (404, 405)  # the errors a browser is shown as a page


@web.middleware
async def error_pages(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A browser asking for an unknown address (404) or with a method it does not take (405) gets a
    page in its reader's language with the way back to the console or the login; API clients
    (under ``/api/``, or an ``Accept`` without HTML) get the JSON of bot/web/errors.py."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        wants_html = not request.path.startswith("/api/") and "text/html" in request.headers.get("Accept", "")
        if exc.status not in _ERROR_PAGES or not wants_html:
            raise
        status = exc.status
    try:
        found = await auth.current(request)
    except StoreUnavailable:
        found = None
    if found is not None:
        request[SESSION], request[AGENT] = found
    response = page(request, "not_found.html", status=status, status_code=status, path=request.path)
    response.headers.update(SECURITY_HEADERS)
    return response


def language(request: web.Request, agent: Agent | None = None) -> str:
    fallback = request.app[SETTINGS].console.language
    if agent is not None:
        return pick_language(agent.lang, fallback)
    return pick_language(request.query.get("lang") or request.cookies.get("omnirouter_lang"), fallback)


def render(app: web.Application, name: str, lang: str, **context: Any) -> str:
    env = aiohttp_jinja2.get_env(app)
    context.setdefault("oob", False)
    return env.get_template(name).render(**template_words(lang), lang=lang, **context)


def page(request: web.Request, name: str, status: int = 200, **context: Any) -> web.Response:
    agent: Agent | None = request.get(AGENT)
    session: Session | None = request.get(SESSION)
    lang = language(request, agent)
    context.setdefault("agent", agent)
    context.setdefault("csrf", session.csrf if session else "")
    html = render(request.app, name, lang, **context)
    return web.Response(text=html, content_type="text/html", status=status)


def redirect(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location})


def plain(status: int, text: str) -> web.Response:
    return web.Response(status=status, text=text, content_type="text/plain")


def signed_in(role: Role | None = None) -> Callable[[Handler], Handler]:
    """Only for a live session (of ``role`` or a higher one); every non-GET must come from this site
    and carry the session's CSRF token. The handler is marked with its access, which the
    authorisation tests read."""

    def decorate(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def guarded(request: web.Request) -> web.StreamResponse:
            found = await auth.current(request)
            if found is None:
                if request.method == "GET" and not request.headers.get("HX-Request"):
                    raise web.HTTPSeeOther("/login")
                return plain(401, "log in first")
            session, agent = found
            if request.method not in ("GET", "HEAD"):
                if auth.cross_site(request):
                    return plain(403, "cross-site requests are refused")
                if request.content_type == "multipart/form-data":  # a file: up to server.max_upload_bytes
                    request = request.clone(client_max_size=request.app[SETTINGS].server.max_upload_bytes)
                try:
                    if not await auth.csrf_ok(request, session.csrf):
                        return plain(403, "CSRF token missing or wrong: reload the page")
                except web.HTTPRequestEntityTooLarge:
                    largest = megabytes(request.app[SETTINGS].server.max_upload_bytes)
                    return plain(
                        413,
                        translate(
                            agent.lang, "The file is larger than {size}, the most the router accepts.", size=largest
                        ),
                    )
            request[SESSION], request[AGENT] = session, agent
            if role is not None and Role(agent.role).rank < role.rank:
                return page(request, "forbidden.html", status=403, needed=role.value)
            return await handler(request)

        return mark(guarded, Access("session", role=role or Role.AGENT))

    return decorate


def current_agent(request: web.Request) -> Agent:
    agent: Agent = request[AGENT]
    return agent
