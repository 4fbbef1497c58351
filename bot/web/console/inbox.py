"""The agent console: the queue, the agent's conversations, a thread with the contact's whole
history, and the actions on it (take, reply, note, labels, transfer, resolve), plus the shift
button and the live socket.

Forms work as plain HTML posts (303 back to the page); with htmx loaded, reply and note post in
place and the page stays put. Every post carries the session's CSRF token.
"""

from __future__ import annotations

import re
import secrets
from typing import Any

from aiohttp import web
from aiohttp.web_request import FileField

from bot import audit
from bot.handlers.kit.media import clean_type, megabytes
from bot.keys import ADAPTERS, QUEUE, SETTINGS, SHIFTS, STORE
from bot.router.queue import CannotTake, QueueError
from bot.router.replies import ReplyRefused
from bot.router.shifts import read_location
from bot.services.replies import AgentFile
from bot.services.teams import is_team
from bot.web.console import auth
from bot.web.console.contact_panel import panel
from bot.web.console.live import ConsoleSocket
from bot.web.console.views import my_rows, queue_rows, thread_view
from bot.web.console.wa_templates import TEMPLATES
from bot.web.i18n import LANGUAGES, translate
from bot.web.keys import CONSOLE_HUB, SERVICES
from bot.web.pages import AGENT, SESSION, current_agent, page, plain, redirect, render, signed_in
from conversations.agent_models import ALERTS, Agent
from conversations.membership import grant_of, member_keys, sees
from conversations.models import epoch_ms
from conversations.thread_models import Thread

_NONCE = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
_LABEL = re.compile(r"^[\w][\w .:-]{0,31}$")
MAX_TEXT = 4096


async def _thread_context(request: web.Request, agent: Agent, thread: Thread | None) -> dict[str, Any]:
    app = request.app
    if thread is None:
        return {"view": None, "templates": []}
    view = await thread_view(app[STORE], app[QUEUE], agent, thread)
    customer = await panel(app[STORE], await app[STORE].contacts.get_contact(thread.contact_id), agent)
    templates = await app[TEMPLATES].templates(thread) if view.wa_window_open is False else []
    adapter = app[ADAPTERS].get(thread.channel)
    largest = app[SETTINGS].server.max_upload_bytes
    if adapter is not None and adapter.capabilities.max_file_bytes is not None:
        largest = min(largest, adapter.capabilities.max_file_bytes)
    return {
        "view": view,
        "templates": templates,
        "nonce": secrets.token_urlsafe(12),
        "customer": customer,
        "can_attach": adapter is not None and adapter.capabilities.files,
        "largest_file": largest,
        "largest_file_text": megabytes(largest),
    }


async def _seen(app: web.Application, agent: Agent, context: dict[str, Any]) -> None:
    """Mark the shown conversation read up to its newest message on the page (a message stored
    after the page was drawn stays unread)."""
    view = context.get("view")
    if view is None:
        return
    thread = view.thread
    shown = [item.at for item in view.items if item.kind == "message" and item.thread_id == thread.id]
    if not shown:
        return
    newest = max(shown)
    if thread.unread_since_ms is None and thread.seen_ms is not None and thread.seen_ms >= epoch_ms(newest):
        return  # marked so already: a live update of a read conversation writes nothing
    await app[STORE].threads.mark_seen(agent.account_id, thread.id, newest)


async def _lists(request: web.Request, agent: Agent) -> dict[str, Any]:
    app = request.app
    routing = await app[QUEUE].routing(agent.account_id)
    inboxes = await app[QUEUE].account_routing.inbox_strategies(agent.account_id)
    return {
        "queue": await queue_rows(app[STORE], app[QUEUE], agent),
        "mine": await my_rows(app[STORE], app[QUEUE], agent),
        "strategy": routing.strategy,
        # "Take next" where the account's strategy, or one of its inboxes', is next
        "offers_next": routing.strategy == "next" or "next" in inboxes.values(),
        "record_location": routing.record_location,
    }


async def _visible(request: web.Request, agent: Agent, thread_id: str | None) -> Thread | None:
    if not thread_id:
        return None
    thread = await request.app[STORE].threads.get_thread(thread_id)
    return thread if thread is not None and sees(agent, thread) else None


@signed_in()
async def console(request: web.Request) -> web.Response:
    agent = current_agent(request)
    thread = await _visible(request, agent, request.query.get("thread"))
    shown = await _thread_context(request, agent, thread)
    await _seen(request.app, agent, shown)  # before the lists, which then show it read
    context = {**await _lists(request, agent), **shown}
    return page(request, "console.html", error=request.query.get("error", "")[:200], **context)


async def render_live(app: web.Application, sock: ConsoleSocket, parts: set[str], notify: list[tuple[str, str]]) -> str:
    """The fragments a console needs after an event, marked for htmx's out-of-band swap."""
    store = app[STORE]
    agent = await store.agents.get_agent(sock.agent_id)
    if agent is None or not agent.active or (sock.role and grant_of(agent) != sock.role):
        return ""  # nothing under a grant that no longer holds: the socket is being closed
    lang, html = agent.lang, []
    request_like = _Detached(app, agent)
    thread = await store.threads.get_thread(sock.thread_id) if sock.thread_id and "thread" in parts else None
    if thread is not None and not sees(agent, thread):  # another account's, or an inbox they left
        thread = None
    context = await _thread_context(request_like, agent, thread) if thread is not None else {}  # type: ignore[arg-type]
    if sock.visible:  # the agent is looking at it: what it shows is seen, before the lists say so
        await _seen(app, agent, context)
    if parts & {"queue", "mine", "header"}:
        lists = await _lists(request_like, agent)  # type: ignore[arg-type]
        for part in sorted(parts & {"queue", "mine", "header"}):
            html.append(render(app, f"_{part}.html", lang, agent=agent, csrf=sock.csrf, oob=True, **lists))
    if thread is not None:
        for part in ("_history.html", "_thread_head.html"):
            html.append(render(app, part, lang, agent=agent, csrf=sock.csrf, oob=True, **context))
    if "typing" in parts and sock.thread_id:
        html.append(render(app, "_typing.html", lang, shown=True, oob=True))
    if notify:
        html.append(render(app, "_notify.html", lang, agent=agent, alerts=notify, stamp=secrets.token_hex(6), oob=True))
    return "".join(html)


class _Detached:
    """Just enough of a request for rendering a live update outside any request."""

    def __init__(self, app: web.Application, agent: Agent) -> None:
        self.app = app
        self._items = {AGENT: agent}

    def get(self, key: str, default: Any = None) -> Any:
        return self._items.get(key, default)


@signed_in()
async def socket(request: web.Request) -> web.StreamResponse:
    if auth.cross_site(request):
        return plain(403, "cross-origin console sockets are refused")
    agent = current_agent(request)
    thread = await _visible(request, agent, request.query.get("thread"))
    ws = web.WebSocketResponse(heartbeat=30, max_msg_size=4096)
    await ws.prepare(request)
    sock = ConsoleSocket(
        ws,
        agent.account_id,
        agent.id,
        thread.id if thread else None,
        agent.lang,
        request[SESSION].csrf,
        session_id=request[SESSION].id,
        role=grant_of(agent),
        teams=frozenset(agent.teams),
        inboxes=member_keys(agent),
        alerts_off=frozenset(agent.alerts_off),
    )
    return await request.app[CONSOLE_HUB].serve(request, sock)


def _back(request: web.Request, thread_id: str | None = None, error: str = "") -> web.Response:
    query = []
    if thread_id:
        query.append(f"thread={thread_id}")
    if error:
        query.append("error=" + re.sub(r"[^\w .,:;'()-]", "", error)[:200].replace(" ", "+"))
    return redirect("/console" + ("?" + "&".join(query) if query else ""))


def _refused(request: web.Request, exc: ReplyRefused, thread_id: str) -> web.Response:
    if request.headers.get("HX-Request"):
        return plain(409, str(exc))
    return _back(request, thread_id, str(exc))


def _failed(request: web.Request, exc: QueueError, thread_id: str | None) -> web.Response:
    if request.headers.get("HX-Request"):
        return plain(exc.status, str(exc))
    return _back(request, thread_id, str(exc))


async def _cannot_take(request: web.Request, agent: Agent, thread_id: str, exc: CannotTake, note: str) -> web.Response:
    """The conversation's page again (409), saying why the agent cannot take it and offering
    their team's queue (or the general one) instead."""
    thread = await _visible(request, agent, thread_id)
    why = {
        "is not on shift": translate(agent.lang, "they are not on shift"),
        "is away": translate(agent.lang, "they are away"),
    }.get(exc.why) or translate(agent.lang, "they have no free place ({why})", why=exc.why.removeprefix("has "))
    offer = {"agent": exc.agent_name, "why": why, "team": exc.team, "note": note}
    context = {**await _lists(request, agent), **await _thread_context(request, agent, thread), "offer": offer}
    return page(request, "console.html", status=409, error="", **context)


@signed_in()
async def shift(request: web.Request) -> web.Response:
    form, agent, shifts = await request.post(), current_agent(request), request.app[SHIFTS]
    location = read_location(form.get("lat"), form.get("lon"), form.get("accuracy"))
    action = form.get("action")
    if action == "start":
        await shifts.start(agent, location)
    elif action == "stop":
        await shifts.stop(agent, location)
    elif action in ("away", "back"):
        await shifts.set_away(agent, action == "away")
    else:
        return plain(400, "action must be start, stop, away or back")
    await audit.record(request.app[STORE], agent.account_id, agent, f"shift.{action}", agent.id)
    return _back(request)


@signed_in()
async def take_next(request: web.Request) -> web.Response:
    agent = current_agent(request)
    try:
        thread = await request.app[SERVICES].threads.take_next(agent)
    except QueueError as exc:
        return _failed(request, exc, None)
    return _back(request, thread.id if thread else None, "" if thread else "nobody is waiting")


@signed_in()
async def act(request: web.Request) -> web.Response:
    """``POST /console/threads/{id}/{action}``: one action on one thread."""
    agent, threads = current_agent(request), request.app[SERVICES].threads
    thread_id, action = request.match_info["thread_id"], request.match_info["action"]
    form = await request.post()
    try:
        if action == "take":
            await threads.take(agent, thread_id)
        elif action == "reply":
            return await _reply(request, agent, thread_id, form)
        elif action == "note":
            text = str(form.get("text", "")).strip()[:MAX_TEXT]
            if not text:
                return plain(400, "the note is empty")
            await threads.note(thread_id, agent, text)
            if request.headers.get("HX-Request"):
                return await _fragment(request, agent, thread_id, "_note_form.html")
        elif action == "labels":
            labels = [part.strip() for part in str(form.get("labels", "")).split(",") if part.strip()]
            if len(labels) > 10 or not all(_LABEL.match(label) for label in labels):
                return plain(400, "up to 10 labels of letters, digits, spaces, . : - (32 characters each)")
            await threads.set_labels(thread_id, agent, labels)
        elif action == "transfer":
            return await _transfer(request, agent, thread_id, form)
        elif action == "resolve":
            await threads.resolve(thread_id, agent)
            return _back(request)
        elif action == "template":
            return await _template(request, agent, thread_id, form)
        elif action == "retry":
            await request.app[SERVICES].replies.retry(thread_id, agent, str(form.get("item", "")))
        elif action == "typing":  # console.js, a few seconds apart while the agent writes
            shown = await request.app[SERVICES].replies.typing(thread_id, agent)
            return web.Response(status=204 if shown else 202)
        else:
            return plain(404, f"no action {action}")
    except QueueError as exc:
        return _failed(request, exc, thread_id)
    return _back(request, thread_id)


async def _transfer(request: web.Request, agent: Agent, thread_id: str, form: Any) -> web.Response:
    """To an agent or a team's queue (a team as bot/services/teams.py names them); QueueError raised."""
    note, team = str(form.get("note", "")).strip()[:1000], str(form.get("team", "")).strip()
    if team and not is_team(team):
        return plain(400, translate(agent.lang, "A team is one name of 1 to 32 letters, digits, - or _."))
    try:
        await request.app[SERVICES].threads.transfer(
            thread_id,
            agent,
            to_agent=str(form.get("agent", "")) or None,
            to_team=team or None,
            note=note,
            fallback=False,
        )
    except CannotTake as exc:  # said at once, with the queue it could go to instead
        return await _cannot_take(request, agent, thread_id, exc, note)
    return _back(request)


async def _reply(request: web.Request, agent: Agent, thread_id: str, form: Any) -> web.Response:
    text, nonce = str(form.get("text", "")).strip(), str(form.get("nonce", ""))
    if not _NONCE.match(nonce):
        return plain(400, "reload the page: the form is missing its nonce")
    canned = {c.shortcut: c.text for c in await request.app[STORE].agents.list_canned(agent.account_id)}
    if text.startswith("/") and text[1:] in canned:
        text = canned[text[1:]]
    upload = form.get("file")
    file = None
    if isinstance(upload, FileField) and upload.filename:
        data = upload.file.read()
        if not data:
            return plain(400, "the attached file is empty")
        name = re.sub(r"[\x00-\x1f/\\]", "_", upload.filename)[:200]
        file = AgentFile(name, clean_type(upload.content_type), data)
    if (not text and file is None) or len(text) > MAX_TEXT:
        return plain(400, f"the reply must be 1 to {MAX_TEXT} characters, or a file")
    try:
        await request.app[SERVICES].replies.answer(thread_id, agent, text, nonce, file)
    except ReplyRefused as exc:
        return _refused(request, exc, thread_id)
    if request.headers.get("HX-Request"):
        return await _fragment(request, agent, thread_id, "_composer.html")
    return _back(request, thread_id)


async def _fragment(request: web.Request, agent: Agent, thread_id: str, form_template: str) -> web.Response:
    """A fresh form plus the updated history, for htmx to swap in place."""
    thread = await _visible(request, agent, thread_id)
    context = await _thread_context(request, agent, thread)
    csrf = request[SESSION].csrf
    html = render(request.app, form_template, agent.lang, agent=agent, csrf=csrf, **context)
    html += render(request.app, "_history.html", agent.lang, agent=agent, csrf=csrf, oob=True, **context)
    return web.Response(text=html, content_type="text/html")


async def _template(request: web.Request, agent: Agent, thread_id: str, form: Any) -> web.Response:
    thread = await _visible(request, agent, thread_id)
    if thread is None:
        return plain(404, "no such conversation")
    if not agent.oversees and thread.assignee != agent.id:
        return plain(403, "take the conversation first")
    nonce = str(form.get("nonce", ""))
    if not _NONCE.match(nonce):
        return plain(400, "reload the page: the form is missing its nonce")
    raw = str(form.get("parameters", "")).strip()
    parameters = [value.strip() for value in raw.split(",")] if raw else []
    try:
        await request.app[SERVICES].replies.template(thread, agent, str(form.get("template", "")), parameters, nonce)
    except ReplyRefused as exc:
        return _back(request, thread_id, str(exc))
    return _back(request, thread_id)


@signed_in()
async def set_alerts(request: web.Request) -> web.Response:
    """The agent's choice of what the console tells them, and how (the checked ``ALERTS``)."""
    form = await request.post()
    kept = {str(value) for value in form.getall("alert", [])}
    if kept - set(ALERTS):
        return plain(400, f"alert must be among {', '.join(ALERTS)}")
    await request.app[STORE].agents.update_agent(current_agent(request).id, alerts_off=sorted(set(ALERTS) - kept))
    thread = str(form.get("thread", ""))  # back to the conversation that was open
    return redirect(f"/console?thread={thread}" if re.fullmatch(r"thr_[0-9a-f]{24}", thread) else "/console")


@signed_in()
async def set_language(request: web.Request) -> web.Response:
    lang = str((await request.post()).get("lang", ""))
    if lang not in LANGUAGES:
        return plain(400, f"lang must be one of {', '.join(LANGUAGES)}")
    await request.app[STORE].agents.update_agent(current_agent(request).id, lang=lang)
    return redirect("/console")


def routes() -> list[web.RouteDef]:
    return [
        web.get("/console", console),
        web.get("/console/ws", socket),
        web.post("/console/shift", shift),
        web.post("/console/next", take_next),
        web.post("/console/lang", set_language),
        web.post("/console/alerts", set_alerts),
        web.post("/console/threads/{thread_id}/{action}", act),
    ]
