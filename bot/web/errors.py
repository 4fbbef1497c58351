"""Every error the router answers is JSON with a one-line reason; bad input never gets a 500.

The one exception is an unknown address (404) or method (405) asked for by a browser: a person
gets a page in their language with a way back to the console or the login, while API clients
(anything under ``/api/``, or an ``Accept`` without HTML) keep the JSON.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from bot.handlers.kit.protocol import MalformedPayload, VerificationError
from bot.keys import SETTINGS
from bot.logs import log_event
from bot.web import pages
from bot.web.console import auth
from conversations.errors import StoreUnavailable

log = logging.getLogger("omnirouter.web")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def json_error(status: int, error: str, detail: str, **headers: str) -> web.Response:
    return web.json_response({"error": error, "detail": detail}, status=status, headers=headers or None)


_REASONS = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    415: "unsupported_media_type",
}


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400 or exc.content_type == "application/json":
            raise
        if exc.status in _PAGES and _wants_html(request):
            return await _error_page(request, exc.status)
        detail = _detail(request, exc)
        return json_error(exc.status, _REASONS.get(exc.status, "http_error"), detail)
    except MalformedPayload as exc:
        return json_error(400, "bad_request", str(exc))
    except VerificationError as exc:
        return json_error(exc.status, "unauthorized" if exc.status == 401 else "forbidden", str(exc))
    except StoreUnavailable:
        log_event(log, "http.store_unavailable", logging.WARNING, path=request.path)
        return json_error(503, "store_unavailable", "the store is unreachable; retry later", **{"Retry-After": "5"})
    except Exception:
        log.exception("http.unhandled", extra={"omnirouter_fields": {"path": request.path}})
        return json_error(500, "internal_error", "the router failed to handle this request")


_PAGES = (404, 405)  # the errors a browser is shown as a page


def _wants_html(request: web.Request) -> bool:
    return not request.path.startswith("/api/") and "text/html" in request.headers.get("Accept", "")


async def _error_page(request: web.Request, status: int) -> web.Response:
    """The page of an unknown address, in the agent's language when signed in (with the console's
    header), else in the page's or the install's."""
    try:
        found = await auth.current(request)
    except StoreUnavailable:
        found = None
    if found is not None:
        request[pages.SESSION], request[pages.AGENT] = found
    response = pages.page(request, "not_found.html", status=status, status_code=status, path=request.path)
    response.headers.update(pages.SECURITY_HEADERS)
    return response


def _detail(request: web.Request, exc: web.HTTPException) -> str:
    if exc.status == 404:
        return f"no route for {request.method} {request.path}"
    if exc.status == 405:
        return f"{request.method} is not allowed on {request.path}"
    if exc.status == 413:
        return f"request body is larger than {request.app[SETTINGS].server.client_max_size} bytes"
    text = exc.text or exc.reason
    try:
        parsed = json.loads(text)
        return str(parsed.get("detail", text)) if isinstance(parsed, dict) else text
    except (TypeError, json.JSONDecodeError):
        return text.removeprefix(f"{exc.status}: ")
