"""The REST API for conversations on the messenger channels: agent replies (through the one reply
path, ``bot/services/replies.py``: WhatsApp's service window and templates enforced) and downloading a customer's attachment by its provider
file id. Same authentication and account scoping as the rest of ``/api``."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from aiohttp import web

from bot.handlers.kit.media import AttachmentError, AttachmentTooLarge, NotDownloadable
from bot.keys import ADAPTERS, QUEUE, SETTINGS, STORE
from bot.router.queue import QueueError
from bot.router.replies import Reply, ReplyRefused
from bot.services.attachments import attachment_file, files_quota
from bot.web.api.kit import ApiRoutes, Call, api_error, reply, visible_message, visible_thread
from bot.web.api.messages import small_int
from bot.web.api.openapi import ref
from bot.web.errors import json_error
from bot.web.keys import SERVICES

API = ApiRoutes()
_DOCUMENT_KEYS = ("url", "file_id", "media_id", "name")

REPLY_BODY: dict[str, Any] = {
    "type": "object",
    "required": ["id"],
    "properties": {
        "id": {"type": "string", "minLength": 1, "maxLength": 100, "description": "your idempotency key"},
        "text": {"type": "string", "maxLength": 4096},
        "options": {"type": "array", "items": {"type": "string", "maxLength": 256}, "maxItems": 100},
        "document": {
            "type": "object",
            "anyOf": [{"required": ["url"]}, {"required": ["file_id"]}, {"required": ["media_id"]}],
            "description": "other keys are ignored",
            "properties": {
                # a provider fetches the url itself; a bare string would be a path to pywa
                "url": {"type": "string", "maxLength": 2000, "pattern": "^https?://[^/?#\\s]"},
                "file_id": {
                    "type": "string",
                    "maxLength": 500,
                    "pattern": "^[A-Za-z0-9_-]+$",
                    "description": "Telegram's",
                },
                "media_id": {"type": "string", "maxLength": 500, "pattern": "^[0-9]+$", "description": "WhatsApp's"},
                "name": {"type": "string", "maxLength": 255},
            },
        },
        "template": {"type": "string", "maxLength": 512},
        "parameters": {
            "anyOf": [
                {"type": "array", "items": {"type": "string"}},
                {"type": "object", "additionalProperties": {"type": ["string", "number"]}},
            ]
        },
        "agent": {"type": "string", "maxLength": 100},
    },
}


def reply_from(body: dict[str, Any]) -> Reply:
    parameters = body.get("parameters", [])
    parameters = {str(k): str(v) for k, v in parameters.items()} if isinstance(parameters, dict) else tuple(parameters)
    document = body.get("document")
    if document is not None:  # only what a channel sends: other keys could not even be stored
        document = {k: v for k, v in document.items() if k in _DOCUMENT_KEYS and isinstance(v, str)}
    return Reply(
        key=body["id"],
        text=body.get("text", ""),
        options=tuple(body.get("options", [])),
        document=document,
        template=body.get("template"),
        parameters=parameters,
        agent=body.get("agent"),
    )


@API(
    "POST",
    "/api/threads/{thread_id}/replies",
    "Queue an agent's reply through the outbox",
    tag="threads",
    agents=True,
    response=ref("Message"),
    status=202,
    body=REPLY_BODY,
    errors=(409,),
    description="Free text (with options or a document) or a WhatsApp template; 409 `service_window_closed` "
    "or `unknown_template` says why it cannot go out. The same `id` never sends twice.",
)
async def post_reply(request: web.Request, call: Call) -> web.Response:
    thread_id = request.match_info["thread_id"]
    thread = visible_thread(call.principal, await request.app[STORE].threads.get_thread(thread_id), thread_id)
    reply_to_send = reply_from(call.body)
    if call.principal.agent is not None:  # an agent's token: as in the console, in a conversation they hold
        try:
            await request.app[QUEUE].open_thread(call.principal.agent, thread_id, own=True)
        except QueueError as exc:
            return json_error(exc.status, exc.code, str(exc))
        reply_to_send = replace(reply_to_send, agent=call.principal.agent.id)
    try:
        message = await request.app[SERVICES].replies.send(
            thread, reply_to_send, call.principal.audit_actor, agent=reply_to_send.agent
        )
    except ReplyRefused as exc:
        return json_error(409 if exc.code != "reply_refused" else 400, exc.code, str(exc))
    return reply(message.to_json(), status=202)


@API(
    "GET",
    "/api/messages/{message_id}/attachments/{index}",
    "The n-th attachment of a message: from the store's files, or fetched from the channel's provider by its file id and kept",
    tag="messages",
    agents=True,
    response=None,
    errors=(409, 413, 502),
)
async def get_attachment(request: web.Request, call: Call) -> web.StreamResponse:
    message_id, index = request.match_info["message_id"], small_int(request.match_info["index"])
    message = await visible_message(request, call.principal, message_id)
    if index is None or index >= len(message.attachments):
        raise api_error(404, "not_found", f"message {message_id} has no such attachment")
    quota = files_quota(request.app[SETTINGS])
    try:
        view = await attachment_file(request.app[STORE], request.app[ADAPTERS], quota, message, index)
    except NotDownloadable as exc:
        return json_error(409, "not_downloadable", str(exc))
    except AttachmentTooLarge as exc:
        return json_error(413, "too_large", str(exc))
    except AttachmentError as exc:
        return json_error(502, "provider_error", str(exc))
    return web.Response(body=view.data, content_type=view.content_type, headers=view.headers())


def routes() -> list[web.RouteDef]:
    return API.routes()
