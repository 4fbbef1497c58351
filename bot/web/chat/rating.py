"""The rating page an e-mail's links open: ``/csat/<token>``, public (the signed token is the key).

The token names the account and the question (bot/router/satisfaction.py ``RatingLinks``); a
forged or altered one is "not found". The page asks 1-5 and an optional comment in the language
the conversation was held in; the rating is taken once (a conditional update in the store), so the
link works once: afterwards it says the conversation has been rated.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from bot.keys import SATISFACTION, STORE
from bot.web.pages import SECURITY_HEADERS, render
from conversations.models import utcnow
from conversations.satisfaction import SatisfactionAsk

MAX_COMMENT = 2000


async def _ask_of(request: web.Request) -> SatisfactionAsk:
    links = request.app[SATISFACTION].links
    opened = links.opened(request.match_info["token"]) if links is not None else None
    ask = await request.app[STORE].satisfaction.get_ask(*opened) if opened else None
    if ask is None or ask.skipped is not None:
        raise web.HTTPNotFound(text="This rating link is not valid.")
    return ask


def _page(request: web.Request, ask: SatisfactionAsk, status: int = 200, **context: Any) -> web.Response:
    context.setdefault("error", "")
    context.setdefault("chosen", 0)
    html = render(request.app, "rating.html", ask.language, agent=None, csrf="", ask=ask, **context)
    response = web.Response(text=html, content_type="text/html", status=status)
    response.headers.update(SECURITY_HEADERS)
    return response


async def rating_page(request: web.Request) -> web.Response:
    ask = await _ask_of(request)
    chosen = request.query.get("rating", "")
    return _page(request, ask, chosen=int(chosen) if chosen in ("1", "2", "3", "4", "5") else 0)


async def rate(request: web.Request) -> web.Response:
    ask = await _ask_of(request)
    form = await request.post()
    rating, comment = str(form.get("rating", "")), str(form.get("comment", "")).strip()
    if ask.rating is not None:
        return _page(request, ask, status=409)
    if rating not in ("1", "2", "3", "4", "5") or len(comment) > MAX_COMMENT:
        return _page(request, ask, status=400, error="rating" if len(comment) <= MAX_COMMENT else "comment")
    taken = await request.app[STORE].satisfaction.rate(ask.account_id, ask.id, int(rating), utcnow(), comment)
    if not taken:  # answered meanwhile, by another tab or message
        fresh = await request.app[STORE].satisfaction.get_ask(ask.account_id, ask.id)
        return _page(request, fresh or ask, status=409)
    return _page(request, ask, thanked=True)


def routes() -> list[web.RouteDef]:
    return [web.get("/csat/{token}", rating_page), web.post("/csat/{token}", rate)]
