"""Replies sent by another router process, pushed to the visitors connected to this one.

Any process may send a web chat reply (the outbox leases items to whichever process asks first;
an agent's console may be connected to another process), but a visitor's socket is open on one
process only. Each process follows the store's event log (the live feed that refreshes the
consoles, one follower per process): a thread event of a visitor with a socket here reads the
thread's newest messages and pushes the outbound ones that socket has not been given yet, as
the frame its history would show. No store write per message is added: every reply stored is
an event of its thread itself (``conversations/events.py`` reads the outbound messages back), and
the other events of a thread come after the replies queued with them (the rating question before
its own event, satisfaction.py).
An event that names its replies (``replies``) which every page of the visitor here already has
(this process sent them itself) costs no read.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web

from bot.logs import log_event
from conversations.errors import StoreUnavailable
from conversations.models import utcnow
from conversations.repositories import Repositories
from conversations.thread_models import Message

log = logging.getLogger("omnirouter.handlers.webchat")

Key = tuple[str, str]  # (account, visitor)
_NEWEST = 20  # a thread's newest messages read per event
_THREADS_KEPT = 10_000  # threads remembered as (not) a web chat visitor's
_OPENED_SLACK = timedelta(minutes=1)  # a message stored this long before the socket opened is in its history


class VisitorSocket:
    """One browser connection to one web chat; sends are serialised (replies and acks come from
    several tasks). ``given``: the messages this page has (its history, and every reply pushed since)."""

    def __init__(self, ws: web.WebSocketResponse, inbox_id: str | None = None) -> None:
        self.ws = ws
        self.inbox_id = inbox_id  # the web chat inbox the page is of (None: the account's first)
        self.opened: datetime = utcnow()
        self.given: set[str] = set()
        self._lock = asyncio.Lock()

    async def send(self, frame: Mapping[str, Any]) -> bool:
        async with self._lock:
            if self.ws.closed:
                return False
            try:
                await self.ws.send_str(json.dumps(frame, default=str))
                return True
            except (ConnectionError, RuntimeError):
                return False

    def claim(self, message_id: str) -> bool:
        """Whether the page still lacks ``message_id`` (now counted as given): each reply is pushed once."""
        if message_id in self.given:
            return False
        self.given.add(message_id)
        return True


class ReplyRelay:
    """Follows the live feed while visitors are connected here (``following``)."""

    def __init__(
        self,
        store: Callable[[], Repositories],
        sockets: dict[Key, set[VisitorSocket]],
        frame: Callable[[Key, Message], dict[str, Any]],
    ) -> None:
        self._store = store
        self._sockets = sockets
        self._frame = frame
        self._threads: dict[str, tuple[Key, str | None] | None] = {}  # thread -> its visitor and inbox

    def following(self) -> bool:
        return bool(self._sockets)

    async def follow(self, event: Mapping[str, Any]) -> None:
        """One event of the log: never raises (the feed goes on for the consoles)."""
        thread_id, account_id = event.get("thread_id"), event.get("account_id")
        if not self._sockets or event.get("kind") == "typing" or not isinstance(thread_id, str):
            return
        try:
            found = await self._visitor_of(str(account_id), thread_id)
            if found is not None and found[0] in self._sockets and not self._given(found[0], event.get("replies")):
                await self._push(*found, thread_id)
        except StoreUnavailable:
            log_event(log, "webchat.relay_unavailable", logging.WARNING)
        except Exception:  # a bug here must not end the feed the consoles follow
            log.exception("webchat.relay_failed")

    async def _visitor_of(self, account_id: str, thread_id: str) -> tuple[Key, str | None] | None:
        if thread_id not in self._threads:
            thread = await self._store().threads.get_thread(thread_id)
            if len(self._threads) >= _THREADS_KEPT:
                self._threads.clear()
            webchat = thread is not None and thread.channel == "webchat" and thread.address
            found = ((thread.account_id, str(thread.address)), thread.inbox_id) if webchat and thread else None
            self._threads[thread_id] = found
        found = self._threads[thread_id]
        return found if found is not None and found[0][0] == account_id else None

    def _given(self, key: Key, replies: Any) -> bool:
        """Whether the event names its replies and every page of ``key`` here has them all."""
        if not isinstance(replies, list) or not replies:
            return False
        return all(str(reply) in sock.given for sock in self._sockets.get(key, ()) for reply in replies)

    async def _push(self, key: Key, inbox_id: str | None, thread_id: str) -> None:
        messages = await self._store().messages.thread_messages(thread_id, _NEWEST)
        replies = [m for m in messages if str(m.direction) == "out"]
        for sock in [s for s in list(self._sockets.get(key, ())) if s.inbox_id == inbox_id]:  # its web chat's
            for message in replies:
                if message.created_at >= sock.opened - _OPENED_SLACK and sock.claim(message.id):
                    await sock.send(self._frame(key, message))
