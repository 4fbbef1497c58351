"""Every error the router answers is JSON with a one-line reason; bad input never gets a 500.
(A browser asking for an unknown address gets a page instead: ``error_pages`` in bot/web/pages.py.)"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from bot.handlers.kit.protocol import MalformedPayload, VerificationError
from bot.keys import SETTINGS
from bot.logs import log_event
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
