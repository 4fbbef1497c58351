"""Live consoles: every change the queue makes is an event in the store's ``events`` collection,
and every reply stored (an outbound message) is one too, read from ``messages`` itself
(``conversations/events.py``: a bot-answered message writes no event); each router process follows
that log and re-renders, for each console connected to it, the parts the event touches, pushed over
the WebSocket as HTML fragments that htmx swaps in place.

Following the log works across any number of router processes: through MongoDB's change streams
(inserts only, one on each collection), or by polling (``console.live_feed``), which is what the
embedded store uses by default. Polling re-reads a few seconds of overlap and drops events it has
seen, so an event written late by a slow process is still delivered, once.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from bot.logs import log_event
from bot.tasks import pause, stop_tasks
from conversations.errors import ChangeStreamFailed, StoreClosed, StoreUnavailable
from conversations.repositories import Repositories

log = logging.getLogger("omnirouter.web.live")

Event = dict[str, Any]
Source = Callable[[int, int], Awaitable[list[Event]]]  # (since ms, page size) -> events, oldest first
_OVERLAP_MS = 5_000
_KEEP_EVENTS_MS = 3_600_000
_PAGE = 500


class LiveFeed:
    """Reads the event log of every router process and hands each event over once."""

    def __init__(self, store: Repositories, mode: str, poll_interval: float, prune_interval: float = 60.0) -> None:
        self._store = store
        self.mode = mode
        self._interval = poll_interval
        self._prune_interval = prune_interval
        self._seen: dict[str, int] = {}

    async def run(
        self, deliver: Callable[[Event], Awaitable[None]], listening: Callable[[], bool] = lambda: True
    ) -> None:
        """Hand every event to ``deliver``; polling reads only while ``listening()`` (a console is
        connected to this process: one that connects later renders its whole page first). Events
        older than an hour are pruned meanwhile, whichever way the log is followed."""
        pruning = asyncio.create_task(self._prune(), name="live-feed-prune")
        try:
            if self.mode == "change_stream":
                try:
                    await self._follow(deliver)
                except (ChangeStreamFailed, StoreUnavailable) as exc:
                    error = exc.cause if isinstance(exc, ChangeStreamFailed) else type(exc).__name__
                    log_event(log, "live.change_stream_failed", logging.WARNING, error=error)
                    self.mode = "poll"
            await self._poll(deliver, listening)
        finally:
            pruning.cancel()

    async def _follow(self, deliver: Callable[[Event], Awaitable[None]]) -> None:
        """Both change streams, the events' and the replies'; the first to end, failed or not (an
        ``invalidate``), ends both with ``ChangeStreamFailed`` (the feed polls instead)."""

        async def follow(stream: AsyncIterator[Event]) -> None:
            async for event in stream:
                await deliver(event)

        events = self._store.events
        streams = [asyncio.create_task(follow(s)) for s in (events.watch_events(), events.watch_replies())]
        try:
            done, _ = await asyncio.wait(streams, return_when=asyncio.FIRST_COMPLETED)
            for ended in done:
                ended.result()  # its failure, if it failed
            raise ChangeStreamFailed("ended")
        finally:
            await stop_tasks(streams)  # a stream may swallow a cancellation: it is asked again
            for stream in streams:
                if stream.done() and not stream.cancelled():
                    stream.exception()  # retrieved: the first to end said why already

    async def _prune(self) -> None:
        while True:
            try:
                await self._store.events.prune_events(int(time.time() * 1000) - _KEEP_EVENTS_MS)
            except StoreUnavailable:
                log_event(log, "live.store_unavailable", logging.WARNING)
            await pause(self._prune_interval)

    async def _poll(self, deliver: Callable[[Event], Awaitable[None]], listening: Callable[[], bool]) -> None:
        cursor = int(time.time() * 1000)
        while True:
            try:
                if listening():
                    cursor = await self._read(cursor, deliver)
                else:  # nobody to tell: no reads of the log under load with no console open; what
                    # was delivered before stays known, so the next read's overlap repeats none of it
                    cursor = int(time.time() * 1000)
            except StoreUnavailable:
                log_event(log, "live.store_unavailable", logging.WARNING)
            await pause(self._interval)

    async def _read(self, cursor: int, deliver: Callable[[Event], Awaitable[None]]) -> int:
        """Deliver the events and the replies from ``cursor`` minus the overlap on; returns the
        new cursor."""
        since = cursor
        for source in (self._store.events.events_since, self._store.events.replies_since):
            cursor = max(cursor, await self._read_source(source, since, deliver))
        horizon = cursor - 2 * _OVERLAP_MS
        self._seen = {key: at for key, at in self._seen.items() if at >= horizon}
        return cursor

    async def _read_source(self, source: Source, cursor: int, deliver: Callable[[Event], Awaitable[None]]) -> int:
        """Deliver one source's events from ``cursor`` minus the overlap on, page by page (a busy
        log has more than a page in its overlap alone); returns the newest time read."""
        start = cursor - _OVERLAP_MS
        while True:
            events = await source(start, _PAGE)
            for event in events:
                at_ms = int(event.get("at_ms", 0))
                cursor = max(cursor, at_ms)
                if str(event["_id"]) in self._seen:
                    continue
                self._seen[str(event["_id"])] = at_ms
                await deliver(event)
            if len(events) < _PAGE:
                break
            last = int(events[-1].get("at_ms", 0))
            start = last if last > start else start + 1  # a whole page in one millisecond: move on
        return cursor


@dataclass(eq=False)
class ConsoleSocket:
    """One open console: whose it is, which thread it shows, and what it must refresh."""

    ws: web.WebSocketResponse
    account_id: str
    agent_id: str
    thread_id: str | None
    lang: str
    csrf: str
    session_id: str = ""  # the session (and the role, with the inboxes: ``membership.grant_of``) the
    role: str = ""  # socket was opened under: it lives only as long as both hold (``ConsoleHub.watch``)
    teams: frozenset[str] = frozenset()
    inboxes: frozenset[str] | None = None  # the keys of the agent's inboxes; None: every inbox
    alerts_off: frozenset[str] = frozenset()  # of ``ALERTS``: what this agent is not told
    parts: set[str] = field(default_factory=set)
    notify: list[tuple[str, str]] = field(default_factory=list)  # (alert, thread id)
    # whether the agent can see the page (console.js says so on connect and on every change): what
    # a tab in the background receives is not marked read until the agent looks at it
    visible: bool = False
    flushing: asyncio.Task[None] | None = None


Render = Callable[[ConsoleSocket, set[str], list[tuple[str, str]]], Awaitable[str]]
# which of these (session id, agent id, role) no longer hold -> why ("signed out", "role changed")
Ended = Callable[[list[tuple[str, str, str]]], Awaitable[dict[str, str]]]
CLOSE_CODES = {"signed out": 4401, "role changed": 4403}  # the page reloads on these (console.js)


def parts_for(event: Event, sock: ConsoleSocket) -> set[str]:
    """Which parts of ``sock``'s page an event changes."""
    kind = event.get("kind")
    on_open_thread = sock.thread_id is not None and event.get("thread_id") in (sock.thread_id, None)
    parts: set[str] = set()
    if kind in ("message", "assigned", "queue"):
        parts |= {"queue", "mine"}
    if kind == "presence" and event.get("agent_id") == sock.agent_id:
        parts |= {"header", "mine"}
    if on_open_thread and kind in ("message", "assigned", "queue", "thread", "delivery"):
        parts.add("thread")
    if on_open_thread and kind == "typing" and event.get("thread_id"):
        parts.add("typing")
    return parts


def alert_for(event: Event, sock: ConsoleSocket) -> str | None:
    """What the event tells ``sock``'s agent (one of ``ALERTS``), if anything: a conversation
    assigned to them, a customer writing in one of theirs, a new conversation queued for one of
    their teams (or for no team) — never what they did themselves, nor what they turned off."""
    kind, alert, by = event.get("kind"), event.get("alert"), event.get("by")
    if by == sock.agent_id:
        return None
    found = None
    if kind == "assigned" and event.get("agent_id") == sock.agent_id:
        found = "assigned"
    elif alert == "customer_message" and event.get("assignee") == sock.agent_id:
        found = "customer_message"
    elif alert == "queued" and (not event.get("team") or event.get("team") in sock.teams):
        found = "queued"
    return found if found not in sock.alerts_off else None


async def _close(ws: web.WebSocketResponse, code: int, reason: str) -> None:
    try:
        await ws.close(code=code, message=reason.encode())
    except (ConnectionError, RuntimeError) as exc:
        log_event(log, "live.close_failed", logging.DEBUG, error=type(exc).__name__)


class ConsoleHub:
    """The consoles connected to this process, refreshed as events arrive (coalesced briefly)."""

    def __init__(self, render: Render, delay: float = 0.05) -> None:
        self._render = render
        self._delay = delay
        self.sockets: set[ConsoleSocket] = set()
        self._closing: set[asyncio.Task[None]] = set()
        self._flushing: set[asyncio.Task[None]] = set()

    async def deliver(self, event: Event) -> None:
        for sock in list(self.sockets):
            if sock.account_id != event.get("account_id") or not _hears(sock, event):
                continue
            parts = parts_for(event, sock)
            alert, thread_id = alert_for(event, sock), str(event.get("thread_id"))
            if alert is not None:  # one alert per conversation and update: the latest
                sock.notify = [*(n for n in sock.notify if n[1] != thread_id), (alert, thread_id)]
            if parts or sock.notify:
                sock.parts |= parts
                self._schedule(sock)

    def _schedule(self, sock: ConsoleSocket) -> None:
        if sock.flushing is None or sock.flushing.done():
            sock.flushing = asyncio.create_task(self._flush(sock))
            self._flushing.add(sock.flushing)
            sock.flushing.add_done_callback(self._flushing.discard)

    async def _flush(self, sock: ConsoleSocket) -> None:
        """Send what changed; what arrives while a page renders goes in the next round of the loop
        (one flush per socket at a time, so nothing that came meanwhile waits for another event).
        A socket closed or ended meanwhile gets nothing more: the flush ends after the render in
        flight, which is let finish, never cancelled inside its store reads."""
        await asyncio.sleep(self._delay)
        while (sock.parts or sock.notify) and sock in self.sockets:
            parts, notify = sock.parts, sock.notify
            sock.parts, sock.notify = set(), []
            try:
                html = await self._render(sock, parts, notify)
                if html and sock in self.sockets and not sock.ws.closed:
                    await sock.ws.send_str(html)
            except (ConnectionError, RuntimeError, StoreUnavailable, StoreClosed) as exc:
                log_event(log, "live.push_failed", logging.DEBUG, error=type(exc).__name__)
                return
            except Exception:  # a bug in one page's update: said loudly, the next update comes
                log.exception("live.render_failed", extra={"omnirouter_fields": {"agent": sock.agent_id}})
                return

    async def serve(self, request: web.Request, sock: ConsoleSocket) -> web.WebSocketResponse:
        """Keep the socket registered until the browser leaves; it only listens. On (re)connect
        the whole page is refreshed, so nothing missed while disconnected stays stale."""
        self.sockets.add(sock)
        sock.parts = {"queue", "mine", "header", "thread"}
        self._schedule(sock)
        try:
            async for frame in sock.ws:
                if frame.type == WSMsgType.TEXT and (seen := _visibility(frame.data)) is not None:
                    looked, sock.visible = seen and not sock.visible, seen
                    if looked and sock.thread_id:  # back to the page: what it shows is read now
                        sock.parts |= {"thread", "queue", "mine", "header"}
                        self._schedule(sock)
        finally:
            self._forget(sock)
        return sock.ws

    async def watch(self, ended: Ended, interval: float) -> None:
        """Every ``interval`` seconds, close the sockets whose session ended (logout on any router
        process, expiry, the agent disabled) or whose agent's role changed: what one could see
        under the old grant must stop reaching the browser. One check for all of this process's
        sockets, read from the store that every process shares. A check that fails is logged and
        the next one runs on time: the watch never ends while the router runs."""
        while True:
            await pause(interval)
            sockets = [sock for sock in self.sockets if sock.session_id]
            if not sockets:
                continue
            try:
                verdicts = await ended([(sock.session_id, sock.agent_id, sock.role) for sock in sockets])
            except StoreUnavailable:
                log_event(log, "live.store_unavailable", logging.WARNING)
                continue
            except Exception:  # an unexpected failure of one check must not end every later one
                log.exception("live.socket_check_failed")
                continue
            for sock in sockets:
                if sock.session_id in verdicts:
                    self._end(sock, verdicts[sock.session_id])

    def _end(self, sock: ConsoleSocket, reason: str) -> None:
        """Stop pushing to ``sock`` now (a flush in flight sends nothing more) and close it (a slow
        browser's close holds up no other check)."""
        self._forget(sock)
        log_event(log, "live.socket_closed", agent=sock.agent_id, reason=reason)
        closing = asyncio.create_task(_close(sock.ws, CLOSE_CODES.get(reason, 4401), reason))
        self._closing.add(closing)
        closing.add_done_callback(self._closing.discard)

    def _forget(self, sock: ConsoleSocket) -> None:
        """Push nothing more to ``sock``: a flush in flight ends after its render, which sends
        nothing and, the page no longer seen, marks nothing read."""
        self.sockets.discard(sock)
        sock.visible = False

    async def close_all(self, timeout: float = 5.0) -> None:
        """At shutdown, before the store closes: close every page and wait for the renders and
        closes in flight."""
        sockets = list(self.sockets)
        for sock in sockets:
            self._forget(sock)
        await asyncio.gather(*(s.ws.close(code=1001, message=b"restarting") for s in sockets), return_exceptions=True)
        if pending := self._flushing | self._closing:
            await asyncio.wait(pending, timeout=timeout)


def _hears(sock: ConsoleSocket, event: Event) -> bool:
    """Whether an event may reach ``sock``: one of a conversation only if the agent sees its inbox
    (an event that does not name the inbox, as an older router wrote, only if they see every inbox)."""
    if sock.inboxes is None or not event.get("thread_id"):
        return True
    return event.get("inbox") in sock.inboxes


def _visibility(data: str) -> bool | None:
    """``{"visible": true|false}`` from console.js; ``None`` for anything else (htmx's own frames)."""
    try:
        said = json.loads(data)
    except ValueError:
        return None
    return said["visible"] if isinstance(said, dict) and isinstance(said.get("visible"), bool) else None
