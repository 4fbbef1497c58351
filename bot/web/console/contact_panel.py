"""The customer beside the conversation: their name (editable), the account's custom attributes
(filled in here), and their past conversations (in the agent's inboxes). Any agent of the account may
edit a contact they can see (one with a conversation in their inboxes); each change is audited (ids only)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from aiohttp import web

from bot import audit
from bot.keys import STORE
from bot.services.contact_fields import FieldError, defined, values_from
from bot.services.contact_merge import UNDO_DAYS, undo_until
from bot.web.pages import current_agent, plain, redirect, signed_in
from conversations.agent_models import Agent
from conversations.membership import member_keys, sees
from conversations.models import utcnow
from conversations.repositories import Repositories
from conversations.thread_models import Contact, Thread

MAX_NAME = 80


async def panel(store: Repositories, contact: Contact | None, agent: Agent) -> dict[str, Any]:
    """What the panel shows: the defined attributes with the contact's values, past conversations
    (of the agent's inboxes)."""
    account_id = agent.account_id
    account = await store.accounts.get_account(account_id)
    threads: list[Thread] = await store.threads.contact_threads(account_id, contact.id) if contact else []
    threads = [thread for thread in threads if sees(agent, thread)]
    since = utcnow() - timedelta(days=UNDO_DAYS)
    merges = await store.merges.standing_merges(account_id, contact.id, since) if contact else []
    merged = await store.contacts.contacts_by_id([m.gone_id for m in merges])
    return {
        "name": (contact.name or "") if contact else "",
        "attributes": defined(account.contact_attributes if account else []),
        "values": dict(contact.attributes) if contact else {},
        "past": list(reversed(threads)),
        "consent": _consent(contact),
        "merges": [(m, merged.get(m.gone_id), undo_until(m)) for m in merges],
    }


async def works_with(store: Repositories, agent: Agent, contact_id: str) -> Contact | None:
    """The contact, if the agent may see and change it: one of their account's and, for an agent
    of some inboxes only, one with a conversation in one of them."""
    contact = await store.contacts.get_contact(contact_id)
    if contact is None or contact.account_id != agent.account_id:
        return None
    if member_keys(agent) is None:
        return contact
    threads = await store.threads.contact_threads(agent.account_id, contact.id)
    return contact if any(sees(agent, thread) for thread in threads) else None


def _consent(contact: Contact | None) -> dict[str, Any] | None:
    """The consent the customer gave in the widget's pre-chat form: when, and to which notice."""
    given = ((contact.prechat or {}) if contact else {}).get("consent")
    if not isinstance(given, dict):
        return None
    try:
        when = datetime.fromisoformat(str(given.get("given_at")))
    except ValueError:
        return None
    url = str(given.get("privacy_url") or "")
    return {"at": when, "privacy_url": url if url.startswith("https://") else ""}


@signed_in()
async def save_contact(request: web.Request) -> web.Response:
    """``POST /console/contacts/{contact_id}``: the name and the attribute values, then back to the
    conversation (``thread``)."""
    agent, store = current_agent(request), request.app[STORE]
    contact_id, form = request.match_info["contact_id"], await request.post()
    if await works_with(store, agent, contact_id) is None:
        return plain(404, "no such contact")
    account = await store.accounts.get_account(agent.account_id)
    name = str(form.get("name", "")).strip()[:MAX_NAME]
    try:
        values = values_from(defined(account.contact_attributes if account else []), form)
    except FieldError as exc:
        return plain(400, str(exc))
    await store.contacts.update_contact(agent.account_id, contact_id, utcnow(), name=name or None, attributes=values)
    await audit.record(store, agent.account_id, agent, "contact.update", contact_id)
    thread = str(form.get("thread", ""))
    return redirect(f"/console?thread={thread}" if thread.startswith("thr_") and thread.isascii() else "/console")


def routes() -> list[web.RouteDef]:
    return [web.post("/console/contacts/{contact_id}", save_contact)]
