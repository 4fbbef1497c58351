"""The console's conversation lists: Mine, Unassigned (the queue), All and Resolved, filtered by
channel, team, label, agent and who waits, most recent activity first, a page at a time (each list
and filter is served by an index of ``threads``, so a page costs the same at any size)."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from bot.keys import QUEUE, STORE
from bot.web.console.views import Row, failure_words, rows
from bot.web.pages import current_agent, page, plain, signed_in
from conversations.agent_models import Agent
from conversations.membership import sees, thread_match
from conversations.models import epoch_ms, from_epoch_ms, utcnow
from conversations.thread_models import OutboxItem, Thread
from conversations.threads import ThreadFilter

CONVERSATIONS = "/console/conversations"
PAGE = 25
VIEWS = ("mine", "unassigned", "all", "resolved")
FAILED = "failed"  # the replies given up on in the agent's conversations (an admin: the account's)
_NAME = re.compile(r"^[\w .:-]{1,64}$")  # a channel, team, label or agent id as the filters take them
_ID = re.compile(r"^[a-z]{3}_[0-9a-f]{24}$")


def view_filter(view: str, agent: Agent) -> ThreadFilter:
    """The list a tab shows (of the agent's inboxes), before the chosen filters."""
    within = thread_match(agent)
    return {
        "mine": ThreadFilter(("assigned",), agent=agent.id, within=within),
        "unassigned": ThreadFilter(("queued",), within=within),
        "resolved": ThreadFilter(("resolved",), within=within),
    }.get(view, ThreadFilter(within=within))


def chosen_filter(query: Any, view: str, agent: Agent) -> ThreadFilter:
    """The tab's list narrowed by the query's filters; ``ValueError`` names a bad one."""
    listed = view_filter(view, agent)
    picked = {
        key: str(query.get(key, "")).strip() for key in ("channel", "team", "label", "agent", "waiting", "unread")
    }
    for key in ("channel", "team", "label", "agent"):
        if picked[key] and not _NAME.match(picked[key]):
            raise ValueError(f"{key} must be 1-64 letters, digits, spaces or . : - _")
    if picked["waiting"] not in ("", "us", "customer"):
        raise ValueError("waiting must be us or customer")
    if picked["unread"] not in ("", "1"):
        raise ValueError("unread must be 1")
    if view == "mine":
        picked["agent"] = agent.id
    return replace(
        listed,
        channel=picked["channel"],
        team=picked["team"],
        label=picked["label"],
        agent=picked["agent"] or listed.agent,
        waiting=picked["waiting"],
        unread=picked["unread"] == "1",
    )


def _cursor(query: Any) -> tuple[datetime | None, str | None]:
    before, before_id = str(query.get("before", "")), str(query.get("before_id", ""))
    if not before:
        return None, None
    if not before.isdigit() or (before_id and not _ID.match(before_id)):
        raise ValueError("before must be epoch milliseconds and before_id a thread id")
    return from_epoch_ms(int(before)), before_id or None


@signed_in()
async def conversations_page(request: web.Request) -> web.Response:
    agent, store = current_agent(request), request.app[STORE]
    view = request.query.get("view", "all")
    if view == FAILED:
        return await _failed_page(request, agent)
    if view not in VIEWS:
        return plain(400, f"view must be one of {', '.join(VIEWS)}")
    try:
        listed = chosen_filter(request.query, view, agent)
        before, before_id = _cursor(request.query)
    except ValueError as exc:
        return plain(400, str(exc))
    sort = request.query.get("sort", "newest")
    if sort not in ("newest", "oldest"):
        return plain(400, "sort must be newest or oldest")
    threads = await store.threads.browse_threads(
        agent.account_id, listed, limit=PAGE + 1, before=before, before_id=before_id, oldest=sort == "oldest"
    )
    shown: list[Row] = await rows(store, request.app[QUEUE], threads[:PAGE], utcnow())
    counts = await _counts(request, agent)
    agents = await store.agents.list_agents(agent.account_id)
    unread = {
        name: await store.threads.count_threads(agent.account_id, replace(view_filter(name, agent), unread=True))
        for name in ("mine", "unassigned", "all")
    }
    return page(
        request,
        "conversations.html",
        view=view,
        rows=shown,
        counts=counts,
        unread_counts=unread,
        listed=listed,
        sort=sort,
        agents={a.id: a.name for a in agents},
        teams=sorted({team for a in agents for team in a.teams}),
        next_page=_next_page(request.query, threads),
        query={k: v for k, v in request.query.items() if k not in ("before", "before_id")},
    )


async def _counts(request: web.Request, agent: Agent) -> dict[str, int]:
    store = request.app[STORE]
    counts = {name: await store.threads.count_threads(agent.account_id, view_filter(name, agent)) for name in VIEWS}
    counts[FAILED] = len(await _dead_letters(request, agent))
    return counts


async def _dead_letters(request: web.Request, agent: Agent) -> list[OutboxItem]:
    store = request.app[STORE]
    if agent.oversees:
        return await store.outbox.dead_letters(agent.account_id)
    mine = [t.id for t in await store.queue.assigned_threads(agent.id) if sees(agent, t)]
    return await store.outbox.dead_letters(agent.account_id, thread_ids=mine) if mine else []


async def _failed_page(request: web.Request, agent: Agent) -> web.Response:
    """The replies the outbox gave up on in the agent's conversations, with what it means and a
    link to the conversation (where Retry is)."""
    store = request.app[STORE]
    dead = await _dead_letters(request, agent)
    threads = {t.id: t for t in [await store.threads.get_thread(i) for i in sorted({d.thread_id for d in dead})] if t}
    shown = await rows(store, request.app[QUEUE], list(threads.values()), utcnow())
    contacts = {row.thread.id: row.contact for row in shown}
    failures = [(d, contacts.get(d.thread_id, d.to.address), failure_words(d.last_error)) for d in dead]
    return page(
        request,
        "conversations.html",
        view=FAILED,
        rows=[],
        failures=failures,
        counts=await _counts(request, agent),
        unread_counts={},
        listed=ThreadFilter(),
        sort="newest",
        agents={},
        teams=[],
        next_page=None,
        query={},
    )


def _next_page(query: Any, threads: list[Thread]) -> str | None:
    """The query string of the page after this one, when there is one."""
    if len(threads) <= PAGE:
        return None
    last = threads[PAGE - 1]
    kept = {k: v for k, v in query.items() if k not in ("before", "before_id")}
    return urlencode({**kept, "before": epoch_ms(last.last_message_at), "before_id": last.id})


def routes() -> list[web.RouteDef]:
    return [web.get(CONVERSATIONS, conversations_page)]
