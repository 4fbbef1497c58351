"""The console's way to a customer's file: an image previewed in the conversation, anything else
downloaded, both through the router (``bot/services/attachments.py``: from the store's GridFS, or
fetched from the provider once and kept there), for the agents of the message's account who see
its conversation's inbox only."""

from __future__ import annotations

import re

from aiohttp import web

from bot.handlers.kit.media import AttachmentError, AttachmentTooLarge, NotDownloadable, file_headers, served_type
from bot.keys import ADAPTERS, SETTINGS, STORE
from bot.services.attachments import attachment_file, files_quota
from bot.web.pages import current_agent, plain, signed_in
from conversations.membership import sees

FILE = "/console/messages/{message_id}/attachments/{index}"
_ID = re.compile(r"^msg_[0-9a-f]{24}$")
_UPLOAD = re.compile(r"^upl_[0-9a-f]{24}:0$")


@signed_in()
async def attachment(request: web.Request) -> web.StreamResponse:
    agent, store = current_agent(request), request.app[STORE]
    message_id, index = request.match_info["message_id"], request.match_info["index"]
    message = await store.messages.get_message(message_id) if _ID.match(message_id) else None
    if message is None or message.account_id != agent.account_id:
        return plain(404, "no such message")
    thread = await store.threads.get_thread(message.thread_id)
    if thread is None or not sees(agent, thread):  # a conversation of an inbox they are not a member of
        return plain(404, "no such message")
    if not (index.isascii() and index.isdigit()) or int(index) >= len(message.attachments):
        return plain(404, "the message has no such attachment")
    quota = files_quota(request.app[SETTINGS])
    try:
        view = await attachment_file(store, request.app[ADAPTERS], quota, message, int(index))
    except NotDownloadable as exc:
        return plain(409, str(exc))
    except AttachmentTooLarge as exc:
        return plain(413, str(exc))
    except AttachmentError as exc:
        return plain(502, f"the channel did not give the file: {exc}")
    return web.Response(body=view.data, content_type=view.content_type, headers=view.headers())


@signed_in()
async def sent_file(request: web.Request) -> web.StreamResponse:
    """A file an agent of the account sent with a reply."""
    agent, store = current_agent(request), request.app[STORE]
    key = request.match_info["file"]
    found = await store.files.read_upload(agent.account_id, key) if _UPLOAD.match(key) else None
    thread = await store.threads.get_thread(found[0].thread_id) if found is not None else None
    if found is None or thread is None or not sees(agent, thread):
        return plain(404, "no such file")
    stored, data = found
    content_type, inline = served_type(stored.content_type, data)
    return web.Response(body=data, content_type=content_type, headers=file_headers(stored.name, inline))


def routes() -> list[web.RouteDef]:
    return [web.get(FILE, attachment), web.get("/console/files/{file}", sent_file)]
