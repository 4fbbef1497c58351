"""The REST API for conversations on the messenger channels: agent replies (with WhatsApp's
service window and templates enforced), downloading a customer's attachment by its provider file
id, and per-account channel settings. Same authentication as the rest of ``/api``."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from bot.handlers.media import AttachmentError, AttachmentTooLarge
from bot.keys import ADAPTERS, OUTBOX, STORE
from bot.router.replies import Reply, ReplyRefused, send_reply
from bot.web.api import guarded, message_json
from bot.web.errors import json_error


def _bad(detail: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(text=json.dumps({"error": "bad_request", "detail": detail}), content_type="application/json")


def _strings(value: Any, what: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _bad(f"{what} must be a list of strings")
    return tuple(value)


async def _reply_from(request: web.Request) -> Reply:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise _bad("body must be JSON") from None
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
    index = request.match_info["index"]
    if message is None or not index.isdigit() or int(index) >= len(message.attachments):
        raise web.HTTPNotFound(text="no such message or attachment")
    attachment = message.attachments[int(index)]
    fetch = getattr(request.app[ADAPTERS].get(message.channel), "fetch_attachment", None)
    if fetch is None or not attachment.provider_ref:
        return json_error(409, "not_downloadable", "this attachment has no file to fetch")
    try:
        data: bytes = await fetch(message.account_id, attachment.provider_ref)
    except AttachmentTooLarge as exc:
        return json_error(413, "too_large", str(exc))
    except AttachmentError as exc:
        return json_error(502, "provider_error", str(exc))
    headers = {"Content-Disposition": f'attachment; filename="{(attachment.name or "file").replace(chr(34), "")}"'}
    return web.Response(body=data, content_type=attachment.mime_type or "application/octet-stream", headers=headers)


@guarded
async def put_account_channel(request: web.Request) -> web.Response:
    """``PUT /api/accounts/{id}/channels/{channel}``: one account's channel settings (the object
    its webhooks and sends use; a running process reads it on first use)."""
    try:
        config = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise _bad("body must be JSON") from None
    if not isinstance(config, dict):
        raise _bad("body must be a JSON object")
    account_id, channel = request.match_info["account_id"], request.match_info["channel"]
    if not await request.app[STORE].set_account_channel(account_id, channel, config):
        raise web.HTTPNotFound(text=f"no account {account_id}")
    return web.json_response({"account": account_id, "channel": channel, "keys": sorted(config)})


def routes() -> list[web.RouteDef]:
    return [
        web.post("/api/threads/{thread_id}/replies", post_reply),
        web.get("/api/messages/{message_id}/attachments/{index}", get_attachment),
        web.put("/api/accounts/{account_id}/channels/{channel}", put_account_channel),
    ]
