"""Merging the customer beside a conversation with another contact of the account ("Merge
with…" in the contact panel): find the other one by name, phone or e-mail, confirm with both side
by side, merge; the panel then offers "Undo merge" for ``UNDO_DAYS``. Any agent of the account may
merge contacts they see, as they may edit them (``contact_panel.py``: for an agent of some inboxes,
contacts with a conversation in one of them); both steps are audited."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from bot.keys import STORE
from bot.services.contact_merge import UNDO_DAYS, MergeRefused, merge, unmerge
from bot.web.console.contact_panel import works_with
from bot.web.pages import current_agent, page, plain, redirect, signed_in
from conversations.repositories import Repositories
from conversations.thread_models import Contact

MAX_QUERY = 80


def _back(thread: str) -> str:
    return f"/console?thread={thread}" if thread.startswith("thr_") and thread.isascii() else "/console"


async def _side(store: Repositories, contact: Contact) -> dict[str, Any]:
    """What the confirm step shows of one contact."""
    threads = await store.threads.contact_threads(contact.account_id, contact.id)
    return {"contact": contact, "threads": len(threads)}


@signed_in()
async def merge_page(request: web.Request) -> web.Response:
    """``GET /console/contacts/{contact_id}/merge``: find the other contact (``q``), or, with
    ``with``, the confirm step showing both."""
    agent, store = current_agent(request), request.app[STORE]
    keep = await works_with(store, agent, request.match_info["contact_id"])
    if keep is None:
        return plain(404, "no such contact")
    thread, query = request.query.get("thread", ""), request.query.get("q", "").strip()[:MAX_QUERY]
    context: dict[str, Any] = {"keep": keep, "thread": thread, "q": query, "undo_days": UNDO_DAYS, "other": None}
    context.update(found=[], filled=[])
    other_id = request.query.get("with", "")
    if other_id:
        other = await works_with(store, agent, other_id)
        if other is None or other.id == keep.id:
            return plain(404, "no such contact")
        context.update(keep_side=await _side(store, keep), other_side=await _side(store, other), other=other)
        context["filled"] = [k for k in other.attributes if k not in keep.attributes]
    elif query:
        found = await store.contacts.search_contacts(agent.account_id, query)
        context["found"] = [c for c in found if c.id != keep.id and await works_with(store, agent, c.id)]
    return page(request, "contact_merge.html", **context)


@signed_in()
async def merge_contact(request: web.Request) -> web.Response:
    """``POST /console/contacts/{contact_id}/merge``: fold contact ``from`` into this one."""
    agent, store, form = current_agent(request), request.app[STORE], await request.post()
    keep_id, gone_id = request.match_info["contact_id"], str(form.get("from", ""))
    if await works_with(store, agent, keep_id) is None or await works_with(store, agent, gone_id) is None:
        return plain(404, "no such contact")
    try:
        await merge(store, agent.account_id, keep_id, gone_id, agent)
    except MergeRefused as exc:
        return plain(exc.status, exc.reason)
    return redirect(_back(str(form.get("thread", ""))))


@signed_in()
async def undo_merge(request: web.Request) -> web.Response:
    """``POST /console/contact-merges/{merge_id}/undo``."""
    agent, store, form = current_agent(request), request.app[STORE], await request.post()
    done = await store.merges.get_merge(request.match_info["merge_id"])
    if done is None or await works_with(store, agent, done.keep_id) is None:
        return plain(404, "no such merge")
    try:
        await unmerge(store, agent.account_id, request.match_info["merge_id"], agent)
    except MergeRefused as exc:
        return plain(exc.status, exc.reason)
    return redirect(_back(str(form.get("thread", ""))))


def routes() -> list[web.RouteDef]:
    return [
        web.get("/console/contacts/{contact_id}/merge", merge_page),
        web.post("/console/contacts/{contact_id}/merge", merge_contact),
        web.post("/console/contact-merges/{merge_id}/undo", undo_merge),
    ]
