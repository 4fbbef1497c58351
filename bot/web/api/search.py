"""``GET /api/search``: the account's messages by their words and its contacts by name or
address, as the console's search finds them (``conversations/search_words.py``)."""

from __future__ import annotations

from aiohttp import web

from bot.keys import STORE
from bot.services.visibility import search_seen
from bot.web.api.kit import ACCOUNT, ApiRoutes, Call, Param, api_error, reply
from bot.web.api.openapi import ref
from conversations.search_words import search_words

API = ApiRoutes()
MAX_QUERY = 200
QUERY = Param(
    "q",
    {"type": "string", "minLength": 1, "maxLength": MAX_QUERY},
    "words, a phone number, an e-mail address or an order number",
)


@API(
    "GET",
    "/api/search",
    "Messages holding every word of `q` (the last one as a prefix; diacritics and case ignored, phone numbers by their digits), newest first, and contacts with every word of `q` in their name or one of their addresses, found the same way",
    tag="contacts",
    agents=True,
    response={
        "type": "object",
        "required": ["messages", "contacts"],
        "properties": {
            "messages": {"type": "array", "items": ref("Message")},
            "contacts": {"type": "array", "items": ref("Contact")},
        },
    },
    query=(QUERY, ACCOUNT),
    errors=(400,),
)
async def search(request: web.Request, call: Call) -> web.Response:
    assert call.account_id is not None
    query = str(call.query.get("q") or "").strip()
    if not search_words(query):
        raise api_error(400, "bad_query", "q must hold at least one word")
    store = request.app[STORE]
    # an agent's token: what the conversations of their inboxes hold
    messages, contacts = await search_seen(store, call.account_id, call.principal.agent, query)
    return reply({"messages": [m.to_json() for m in messages], "contacts": [c.to_json() for c in contacts]})
