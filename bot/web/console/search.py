"""Search in the console: the account's messages by their words (en/lv/ru words with diacritics
folded, phone numbers by their digits, e-mail addresses, order numbers; ``search_words.py``), the
matching words marked, and its contacts by name or address; each result links to its
conversation. Agents see what the conversations of their inboxes hold, as the conversation lists do."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web
from markupsafe import Markup

from bot.keys import STORE
from bot.services.visibility import search_seen
from bot.web.pages import current_agent, page, plain, signed_in
from conversations.membership import sees
from conversations.search_words import highlight
from conversations.thread_models import Contact, Message

SEARCH = "/console/search"
MAX_QUERY = 200


@dataclass(frozen=True)
class Hit:
    message: Message
    marked: Markup  # the text, escaped, its matching words in <mark>


async def search_page(request: web.Request) -> web.Response:
    agent, store = current_agent(request), request.app[STORE]
    query = request.query.get("q", "").strip()
    if len(query) > MAX_QUERY:
        return plain(400, f"the search must be at most {MAX_QUERY} characters")
    hits: list[Hit] = []
    contacts: list[Contact] = []
    if query:
        found, contacts = await search_seen(store, agent.account_id, agent, query)
        hits = [Hit(m, highlight(m.text, query)) for m in found]
    names = await store.contacts.contacts_by_id(sorted({h.message.contact_id for h in hits}))
    threads = {
        c.id: [t for t in await store.threads.contact_threads(agent.account_id, c.id) if sees(agent, t)]
        for c in contacts
    }
    return page(request, "search.html", query=query, hits=hits, contacts=contacts, names=names, threads=threads)


def routes() -> list[web.RouteDef]:
    return [web.get(SEARCH, signed_in()(search_page))]
