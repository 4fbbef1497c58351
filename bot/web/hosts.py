"""The Host check: the router answers only requests that name one of its own host names.

A page that makes its own name resolve to the router's address (DNS rebinding) has the browser
send that name in ``Host``, and the browser then treats the router's answers as that page's own.
So every route — console, API, webhooks, web chat, health — answers ``421 Misdirected Request``
unless ``Host`` names ``server.public_url``'s host, one of ``server.allowed_hosts``, the address
``server.host`` when it is one address (not ``0.0.0.0``), or a loopback name (``localhost``,
``127.0.0.1``, ``[::1]``), on any port. A request without ``Host`` (an HTTP/1.0 tool) comes from no
browser and is answered.

The check is one header read and a set look-up, first of every middleware. Hosts are compared as
``bot.network_settings.host_name`` writes them, the one rule the egress guard's host names follow too.
(``server.allowed_hosts`` is about requests coming in; the hosts the router may call are
``egress.allowed_destinations``.)
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from aiohttp import hdrs, web
from aiohttp.typedefs import Middleware

from bot.logs import log_event
from bot.network_settings import EVERY_ADDRESS, ServerSettings, host_name

log = logging.getLogger("omnirouter.web")
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "[::1]"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def answered_hosts(settings: ServerSettings) -> frozenset[str]:
    names = set(LOOPBACK_NAMES)
    public = urlsplit(settings.public_url).hostname
    if public:
        names.add(host_name(public))
    names.update(host_name(name) for name in settings.allowed_hosts.split(",") if name.strip())
    if settings.host.strip() not in EVERY_ADDRESS:
        names.add(host_name(settings.host))
    return frozenset(names)


def host_check(settings: ServerSettings) -> Middleware:
    """The middleware that refuses other hosts; logs once which hosts it answers."""
    hosts = answered_hosts(settings)
    log_event(log, "web.hosts", hosts=",".join(sorted(hosts)))
    if settings.host.strip() in EVERY_ADDRESS and hosts == LOOPBACK_NAMES:
        log_event(
            log,
            "web.hosts_loopback_only",
            logging.WARNING,
            listen=settings.host or "*",
            hint="requests naming other hosts get 421: set server.public_url or server.allowed_hosts",
        )

    @web.middleware
    async def check_host(request: web.Request, handler: Handler) -> web.StreamResponse:
        given = request.headers.get(hdrs.HOST)
        if given is None or host_name(given) in hosts:
            return await handler(request)
        return misdirected(request, given)

    return check_host


def misdirected(request: web.Request, given: str) -> web.Response:
    """421 with one line: JSON for the API, text elsewhere."""
    detail = (
        f"this router does not answer for host {given[:100]!r}; its operator can add the name to server.allowed_hosts"
    )
    if request.path.startswith("/api/"):
        body = json.dumps({"error": "misdirected_request", "detail": detail})
        return web.Response(status=421, text=body, content_type="application/json")
    return web.Response(status=421, text=detail + "\n", content_type="text/plain")
