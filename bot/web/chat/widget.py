"""The website widget: ``<script src="https://ROUTER/widget.js" data-account="shop" async></script>``
on a business's site puts a launcher bubble on its pages that opens the web chat in an iframe
(``/chat/embed``), in the account's colour, title and greeting.

An account's admin lists the sites (origins) allowed to embed its chat; with none listed the widget
works on the router's own origin only. The router holds to that twice: ``GET /widget/config`` tells
widget.js whether the page's origin may start it at all, and the embedded chat page is served with
``Content-Security-Policy: frame-ancestors`` naming the router itself and the one allowed origin the
iframe was opened for, so a browser refuses to show it framed by any other site. The plain ``/chat``
page may be framed by the router and every allowed site, no other.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from bot.handlers.webchat.visitor_forms import PrechatForm
from bot.keys import QUEUE, SETTINGS, STORE
from bot.web.chat.words import browser_language
from bot.web.i18n import N_, pick_language, translate, words_of
from bot.web.pages import Handler
from conversations.errors import StoreUnavailable
from conversations.models import utcnow
from conversations.tenant_models import Account

STATIC = Path(__file__).resolve().parents[1] / "static"
# an origin as a browser sends it: scheme, host name or address, optional port; nothing more
_SITE = re.compile(
    r"^https?://(\[[0-9a-f:.]+\]|[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*)(:[0-9]{1,5})?$"
)
_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")
_ACCOUNT = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
WIDGET_WORDS = (N_("Open chat"), N_("Chat"), N_("unread messages:"))  # the launcher's, on the site's page
DEFAULT_COLOR = "#2f6feb"
MAX_SITES = 20
MAX_TITLE = 60
MAX_GREETING = 300


class BadWidget(ValueError):
    """A widget setting an admin entered that cannot be kept; the message names it."""


@dataclass(frozen=True)
class WidgetLook:
    """An account's widget: the sites allowed to embed it and how it looks."""

    sites: tuple[str, ...] = ()
    color: str = DEFAULT_COLOR
    title: str = ""
    greeting: str = ""
    prechat: PrechatForm = PrechatForm()

    @classmethod
    def of(cls, account: Account) -> WidgetLook:
        """The account's stored widget; whatever is missing or malformed is left at its default."""
        stored = account.widget if isinstance(account.widget, dict) else {}
        sites = stored.get("sites")
        color, title, greeting = stored.get("color"), stored.get("title"), stored.get("greeting")
        return cls(
            sites=tuple(s for s in sites if isinstance(s, str) and _SITE.match(s)) if isinstance(sites, list) else (),
            color=color if isinstance(color, str) and _COLOR.match(color) else DEFAULT_COLOR,
            title=title if isinstance(title, str) else "",
            greeting=greeting if isinstance(greeting, str) else "",
            prechat=PrechatForm.of(stored),
        )

    def to_doc(self) -> dict[str, Any]:
        look = {"sites": list(self.sites), "color": self.color, "title": self.title, "greeting": self.greeting}
        return {**look, "prechat": self.prechat.to_doc()}


def site_of(text: str) -> str:
    """An allowed site as the browser names it in ``Origin`` (``https://shop.example``): a pasted
    address keeps its scheme, host and port, and loses its path; ``BadWidget`` if it is not one."""
    parts = urlsplit(text.strip())
    try:
        port = parts.port
    except ValueError:
        raise BadWidget(text.strip()) from None
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    default = {"http": 80, "https": 443}.get(parts.scheme)
    site = f"{parts.scheme}://{host}" + (f":{port}" if port and port != default else "")
    if parts.username or parts.password or not _SITE.match(site):
        raise BadWidget(text.strip())
    return site


def read_look(sites: str, color: str, title: str, greeting: str) -> WidgetLook:
    """The widget an admin's form sets: sites one a line (or separated by spaces or commas)."""
    found: list[str] = []
    for line in re.split(r"[\s,]+", sites):
        if line and (site := site_of(line)) not in found:
            found.append(site)
    if len(found) > MAX_SITES:
        raise BadWidget(f"at most {MAX_SITES} sites")
    color = color.strip() or DEFAULT_COLOR
    if not _COLOR.match(color):
        raise BadWidget(color)
    if len(title.strip()) > MAX_TITLE or len(greeting.strip()) > MAX_GREETING:
        raise BadWidget(f"title: at most {MAX_TITLE} characters, greeting: at most {MAX_GREETING}")
    return WidgetLook(tuple(found), color.lower(), title.strip(), greeting.strip())


def own_origins(request: web.Request) -> set[str]:
    """The router's own origins: the one this request came to, and ``server.public_url``'s."""
    own = {f"{request.scheme}://{request.host}".lower()}
    public = request.app[SETTINGS].server.public_url
    if public:
        parts = urlsplit(public)
        own.add(f"{parts.scheme}://{parts.netloc}".lower())
    return own


def frame_ancestors(look: WidgetLook, parent: str | None = None) -> str:
    """The CSP that lets only the router and allowed sites frame the chat: every allowed site, or
    the one ``parent`` named (the embedded page's) when it is allowed, else the router alone."""
    sites = look.sites if parent is None else tuple(s for s in look.sites if s == parent)
    return " ".join(("frame-ancestors 'self'", *sites))


def _account_id(request: web.Request) -> str:
    return request.query.get("account") or request.app[SETTINGS].account.id


def _unknown(what: str) -> web.HTTPNotFound:
    return web.HTTPNotFound(
        text=f'{{"error": "unknown_{what}", "detail": "no such {what}"}}', content_type="application/json"
    )


async def _look(request: web.Request) -> WidgetLook:
    """The widget of the account's first web chat, or of its web chat inbox ``?inbox=`` (a JSON
    404 when either is unknown or disabled)."""
    account_id, inbox_id = _account_id(request), request.query.get("inbox")
    account = await request.app[STORE].accounts.get_account(account_id) if _ACCOUNT.match(account_id) else None
    if account is None or account.disabled:
        raise _unknown("account")
    if not inbox_id:
        return WidgetLook.of(account)
    inbox = await request.app[STORE].inboxes.get_inbox(inbox_id) if _ACCOUNT.match(inbox_id) else None
    if inbox is None or inbox.account_id != account.id or inbox.channel != "webchat" or inbox.disabled:
        raise _unknown("inbox")
    return inbox_look(WidgetLook.of(account), inbox.name, inbox.config)


def inbox_look(account: WidgetLook, name: str, config: Mapping[str, Any]) -> WidgetLook:
    """A web chat inbox's widget: its name as the title, its greeting, colour, sites and pre-chat
    form where it has them, else the account's."""
    sites = [s for s in str(config.get("sites") or "").split() if _SITE.match(s)]
    color = str(config.get("color") or "")
    return replace(
        account,
        sites=tuple(sites) or account.sites,
        color=color if _COLOR.match(color) else account.color,
        title=name,
        greeting=str(config.get("greeting") or "") or account.greeting,
        prechat=PrechatForm.of_inbox(account.prechat, config),
    )


CLOSED = N_("This chat is not available: it is closed or its address is wrong. Please contact us another way.")


def closed_chat(request: web.Request) -> web.Response:
    """The chat page of an unknown or disabled account or web chat inbox: a 404 saying so, in the
    visitor's language."""
    requested = request.query.get("lang") or browser_language(request.headers.get("Accept-Language", ""))
    lang = pick_language(requested, request.app[SETTINGS].console.language)
    text = html.escape(translate(lang, CLOSED))
    body = f'<!doctype html><html lang="{lang}"><head><meta charset="utf-8"><title>{text}</title></head>'
    body += f'<body><main><p id="chat-closed">{text}</p></main></body></html>'
    return web.Response(status=404, text=body, content_type="text/html", headers={"Cache-Control": "no-cache"})


async def widget_script(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(
        STATIC / "widget.js", headers={"Cache-Control": "no-cache", "Content-Type": "text/javascript; charset=utf-8"}
    )


async def widget_config(request: web.Request) -> web.Response:
    """What widget.js needs before it shows anything: whether the page's origin (the browser's
    ``Origin``; none: a same-origin request) may embed the account's chat, and how the widget looks.
    Answered to any origin (it is what every visitor of an allowed site sees anyway)."""
    look = await _look(request)
    origin = request.headers.get("Origin")
    allowed = origin is None or origin.lower() in own_origins(request) or origin in look.sites
    requested = request.query.get("lang") or browser_language(request.headers.get("Accept-Language", ""))
    lang = pick_language(requested, request.app[SETTINGS].console.language)
    body: dict[str, Any] = {"allowed": allowed, "color": look.color, "title": look.title, "greeting": look.greeting}
    body["prechat"] = look.prechat.public()
    body["offline"] = await _offline(request)
    if "lang" in request.query:  # widget.js asks in the page's language; chat.js has its own words
        body["words"] = words_of(lang, WIDGET_WORDS)
    headers = {"Cache-Control": "no-cache", "Vary": "Origin"}
    if origin:
        headers["Access-Control-Allow-Origin"] = origin
    return web.json_response(body, headers=headers)


async def _offline(request: web.Request) -> dict[str, str] | None:
    """The account's business hours when it is outside them now (the chat shows its offline form
    then), else ``None``."""
    hours = (await request.app[QUEUE].routing(_account_id(request))).hours
    return None if hours.is_open(utcnow()) else {"hours": hours.spec, "timezone": str(hours.zone)}


async def embedded_chat(request: web.Request) -> web.StreamResponse:
    """The chat page inside the widget's iframe, framed only by the site it was opened for."""
    try:
        look = await _look(request)
    except web.HTTPNotFound:
        return closed_chat(request)
    parent = request.query.get("parent", "")
    return web.FileResponse(
        STATIC / "chat.html",
        headers={
            "Cache-Control": "no-cache",
            "Content-Security-Policy": frame_ancestors(look, parent),
            "Referrer-Policy": "no-referrer",
            "X-Content-Type-Options": "nosniff",
        },
    )


@web.middleware
async def chat_frames(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The plain chat page (the web chat channel's ``/chat``) may be framed by the router and the
    account's (or the web chat inbox's) allowed sites only; an unknown or disabled account or
    inbox gets a page saying the chat is not available (404)."""
    if request.path != "/chat" or request.method != "GET":
        return await handler(request)
    try:
        look = await _look(request)
    except web.HTTPNotFound:
        return closed_chat(request)
    except StoreUnavailable:
        look = WidgetLook()
    response = await handler(request)
    if response.status == 200 and not response.prepared:
        response.headers.setdefault("Content-Security-Policy", frame_ancestors(look))
    return response


def routes() -> list[web.RouteDef]:
    return [
        web.get("/widget.js", widget_script),
        web.get("/widget/config", widget_config),
        web.get("/chat/embed", embedded_chat),
    ]
