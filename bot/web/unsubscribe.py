"""The one-click unsubscribe link of a campaign's e-mail (RFC 8058): ``POST /unsubscribe/<token>``
with ``List-Unsubscribe=One-Click`` (what a mail client sends for its "Unsubscribe" button) or from
the confirmation page that ``GET`` shows (a link scanner following the URL changes nothing). The
token is random, stored, and names one address on one channel of one account; the opt-out is
recorded in the consent records every campaign asks before sending."""

from __future__ import annotations

from aiohttp import web

from bot.keys import STORE
from bot.web.pages import page
from conversations.models import epoch_ms, utcnow

PATH = "/unsubscribe/{token}"


async def _target(request: web.Request) -> tuple[str, str, str]:
    token = request.match_info["token"]
    found = await request.app[STORE].campaigns.unsubscribe_target(token) if len(token) <= 64 else None
    if found is None:
        raise web.HTTPNotFound()
    return found


async def confirm_page(request: web.Request) -> web.Response:
    _, _, address = await _target(request)
    return page(request, "unsubscribe.html", address=address, done=False)


async def unsubscribe(request: web.Request) -> web.Response:
    account_id, channel, address = await _target(request)
    token = request.match_info["token"]
    await request.app[STORE].phone.set_consent(
        account_id, channel, address, "stop", epoch_ms(utcnow()), f"unsubscribe:{token}"
    )
    return page(request, "unsubscribe.html", address=address, done=True)


def routes() -> list[web.RouteDef]:
    return [web.get(PATH, confirm_page), web.post(PATH, unsubscribe)]
