"""The REST API for conversations on the messenger channels: agent replies (with WhatsApp's
service window and templates enforced), downloading a customer's attachment by its provider file
id, and per-account channel settings. Same authentication as the rest of ``/api``."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import quote

from aiohttp import web

from bot.handlers.base import MalformedPayload
from bot.handlers.media import AttachmentError, AttachmentTooLarge
from bot.handlers.payload import load_json
from bot.keys import ADAPTERS, OUTBOX, STORE
from bot.router.replies import Reply, ReplyRefused, send_reply
from bot.router.sanitize import storable, storable_text
from bot.web.api import guarded, message_json, small_int
from bot.web.errors import json_error


PER_ACCOUNT_CHANNELS = ("telegram", "whatsapp")  # the channels that read settings per account
_MIME = re.compile(r"^[A-Za-z0-9][\w.+-]{0,63}/[A-Za-z0-9][\w.+-]{0,127}$", re.ASCII)
_DOCUMENT_KEYS = ("url", "file_id", "media_id", "name")


def _bad(detail: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(text=json.dumps({"error": "bad_request", "detail": detail}), content_type="application/json")


async def _json_body(request: web.Request) -> Any:
    try:
        return load_json(await request.read())
    except MalformedPayload as exc:
        raise _bad(str(exc)) from None


def _strings(value: Any, what: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _bad(f"{what} must be a list of strings")
    return tuple(value)


async def _reply_from(request: web.Request) -> Reply:
    body = storable(await _json_body(request))  # an agent's text is kept even if oddly encoded
    if not isinstance(body, dict):
        raise _bad("body must be a JSON object")
    key, text, template = body.get("id"), body.get("text", ""), body.get("template")
    if not isinstance(key, str) or not 1 <= len(key) <= 100:
        raise _bad("id (your idempotency key, 1-100 characters) is required")
    if not isinstance(text, str) or (template is not None and not isinstance(template, str)):
        raise _bad("text and template must be strings")
    parameters = body.get("parameters", [])
    if isinstance(parameters, dict):
        parameters = {str(k): str(v) for k, v in parameters.items()}
    else:
        parameters = _strings(parameters, "parameters")
    document = body.get("document")
    if document is not None and not (isinstance(document, dict) and isinstance(document.get("url", document.get("file_id")), str)):
        raise _bad("document must be an object with a url")
    if document is not None:
        document = {k: v for k, v in document.items() if k in _DOCUMENT_KEYS and isinstance(v, str)}
    return Reply(key=key, text=text, options=_strings(body.get("options", []), "options"), document=document,
                 template=template, parameters=parameters, agent=body.get("agent") if isinstance(body.get("agent"), str) else None)


@guarded
async def post_reply(request: web.Request) -> web.Response:
    """``POST /api/threads/{id}/replies``: queue an agent's reply (202), or say why not (409)."""
    thread = await request.app[STORE].get_thread(request.match_info["thread_id"])
    if thread is None:
        raise web.HTTPNotFound(text=f"no thread {request.match_info['thread_id']}")
    reply = await _reply_from(request)
    adapter = request.app[ADAPTERS].get(thread.channel)
    if adapter is None:
        return json_error(409, "channel_not_configured", f"the {thread.channel} channel is not configured here")
    try:
        message = await send_reply(request.app[OUTBOX], adapter, thread, reply)
    except ReplyRefused as exc:
        return json_error(409 if exc.code != "reply_refused" else 400, exc.code, str(exc))
    return web.json_response(message_json(message), status=202, dumps=lambda v: json.dumps(v, default=str))


@guarded
async def get_attachment(request: web.Request) -> web.StreamResponse:
    """``GET /api/messages/{id}/attachments/{n}``: the file, fetched from the provider by its id."""
    message = await request.app[STORE].get_message(request.match_info["message_id"])
    index = small_int(request.match_info["index"])
    if message is None or index is None or index >= len(message.attachments):
        raise web.HTTPNotFound(text="no such message or attachment")
    attachment = message.attachments[index]
    fetch = getattr(request.app[ADAPTERS].get(message.channel), "fetch_attachment", None)
    if fetch is None or not attachment.provider_ref:
        return json_error(409, "not_downloadable", "this attachment has no file to fetch")
    try:
        data: bytes = await fetch(message.account_id, attachment.provider_ref)
    except AttachmentTooLarge as exc:
        return json_error(413, "too_large", str(exc))
    except AttachmentError as exc:
        return json_error(502, "provider_error", str(exc))
    headers = {"Content-Disposition": _disposition(attachment.name or "file"), "X-Content-Type-Options": "nosniff"}
    mime = attachment.mime_type or ""
    return web.Response(body=data, content_type=mime if _MIME.match(mime) else "application/octet-stream",
                        headers=headers)


def _disposition(name: str) -> str:
    """A download header for a customer's file name, whatever it contains (quotes, line breaks,
    non-ASCII): an ASCII fallback plus the exact name percent-encoded (RFC 6266)."""
    fallback = "".join(c if c.isascii() and c.isprintable() and c not in '"\\' else "_" for c in name)[:100]
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name[:200], safe='')}"


@guarded
async def put_account_channel(request: web.Request) -> web.Response:
    """``PUT /api/accounts/{id}/channels/{channel}``: one account's channel settings (the object
    its webhooks and sends use; a running process reads it on first use)."""
    config = await _json_body(request)
    if not isinstance(config, dict):
        raise _bad("body must be a JSON object")
    account_id, channel = request.match_info["account_id"], request.match_info["channel"]
    if channel not in PER_ACCOUNT_CHANNELS:
        raise web.HTTPNotFound(text=f"channel must be one of {', '.join(PER_ACCOUNT_CHANNELS)}")
    problem = _unstorable(config)
    if problem:
        raise _bad(problem)
    if not await request.app[STORE].set_account_channel(account_id, channel, config):
        raise web.HTTPNotFound(text=f"no account {account_id}")
    return web.json_response({"account": account_id, "channel": channel, "keys": sorted(config)})


def _unstorable(config: Any, depth: int = 0) -> str | None:
    """Why ``config`` cannot be stored as settings (keys MongoDB refuses or reads as paths or
    operators, nesting deeper than settings need, unencodable text), or ``None``."""
    if depth > 6:
        return "settings are nested too deeply"
    if isinstance(config, dict):
        for key, value in config.items():
            if not key or key.startswith("$") or "." in key or storable_text(key) != key:
                return f"{key!r} is not a usable settings key"
            if (problem := _unstorable(value, depth + 1)) is not None:
                return problem
    elif isinstance(config, list):
        return next((p for v in config if (p := _unstorable(v, depth + 1)) is not None), None)
    elif isinstance(config, str) and storable_text(config) != config:
        return "settings text contains NUL or unpaired surrogate characters"
    elif isinstance(config, int) and not isinstance(config, bool) and abs(config) >= 2**63:
        return "a settings number is out of range"
    return None


def routes() -> list[web.RouteDef]:
    return [
        web.post("/api/threads/{thread_id}/replies", post_reply),
        web.get("/api/messages/{message_id}/attachments/{index}", get_attachment),
        web.put("/api/accounts/{account_id}/channels/{channel}", put_account_channel),
    ]
