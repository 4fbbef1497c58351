"""The web chat channel: a page at ``/chat`` talking to the router over a WebSocket.

An account's first web chat is ``/chat?account=<id>``; each of its web chat inboxes is
``&inbox=<inbox id>`` on every route (visitors.py: a visitor token is good in one web chat only, and
the messages carry the inbox, so their conversations are the inbox's).

Visitors are identified by a signed token the router issues on first contact and the browser
keeps (``<visitor id>.<issued>.<HMAC>``), so nobody can read another visitor's conversation by
guessing an id. A token unused for ``webchat.visitor_token_days`` expires (the welcome hands out a
renewed one once half of that has passed), and the tokens of a visitor whose contact was erased
are refused: either way the browser becomes a new visitor, never the erased one again. Tokens of
the previous format (``<visitor id>.<HMAC>``, no issue time) are honoured for
``visitor_token_days`` after the first router of this release met one, and renewed on use. Each browser message carries a client-chosen id; the browser resends unacknowledged messages
with the same id after a reconnect, and the inbound dedup key (visitor + id) stores them once.

Frames, browser -> router: ``{"type": "message", "id": "...", "text": "..."}``, ``{"type": "typing"}``
(the visitor is writing), ``{"type": "ping"}``, and what a site embedding the chat says of its visitor (``label``,
``identify``: embedding.py). Router -> browser: ``welcome`` (token, history),
``ack`` (recorded), ``decision`` (what the router did), ``message`` (a reply), ``typing`` (an agent
is writing), ``error`` (with a ``code``; ``retry: true`` when resending may work).

``POST /webchat/messages`` takes the same message as JSON for server-side integrations and load
tests: 202 once recorded.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import secrets
import time
from collections.abc import Mapping
from functools import partial
from pathlib import Path
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from bot.handlers.kit.files import FileLinks
from bot.handlers.kit.payload import load_json
from bot.handlers.kit.protocol import BaseAdapter, Capabilities, ChannelContext, MalformedPayload
from bot.handlers.webchat.embedding import SITE_FRAMES, SiteFrames
from bot.handlers.webchat.frames import message_frame, outbound_frame
from bot.handlers.webchat.history import visitor_history
from bot.handlers.webchat.relay import ReplyRelay, VisitorSocket
from bot.handlers.webchat.settings import WebchatSettings
from bot.handlers.webchat.tokens import VisitorTokens
from bot.handlers.webchat.uploads import VisitorFiles
from bot.handlers.webchat.visitor_forms import FORM_FRAMES, VisitorForms
from bot.handlers.webchat.visitors import ChatPlaces, Visitors
from bot.logs import log_event
from conversations.errors import StoreUnavailable
from conversations.membership import thread_key
from conversations.models import utcnow
from conversations.repositories import Repositories
from conversations.traffic import Identity, Inbound, Outbound

log = logging.getLogger("omnirouter.handlers.webchat")

STATIC = Path(__file__).resolve().parents[2] / "web" / "static"
_CLIENT_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
_REVOKED = 4001  # close code: the visitor's contact was erased; the browser reconnects as someone new
_TYPING_EVERY = 2.0  # seconds between two "typing" events of one visitor


class WebchatAdapter(BaseAdapter):
    name = "webchat"

    def __init__(self, context: ChannelContext) -> None:
        self._context = context
        self._tokens = (
            VisitorTokens(context.settings.section(WebchatSettings).secret)
            if context.settings.section(WebchatSettings).secret
            else None
        )
        self._store: Repositories | None = None
        self._max_text = context.settings.section(WebchatSettings).max_text_length
        self.capabilities = Capabilities(buttons=True, files=True, max_text_length=self._max_text)
        self._files = FileLinks("/webchat/files/{key}", lambda: self.store, lambda text: self.tokens.sign(text))
        self._uploads = VisitorFiles.of(self, context.settings, self._files.url_for)
        self._sockets: dict[tuple[str, str], set[VisitorSocket]] = {}
        # replies another router process sends, pushed to the visitors connected here (relay.py)
        self.relay = ReplyRelay(
            lambda: self.store, self._sockets, lambda key, message: message_frame(message, self._files.url_for(*key))
        )
        self._typing: dict[tuple[str, str], float] = {}  # (account, visitor) -> when last told
        self._places = ChatPlaces(context.account_id, lambda: self.store)
        days = context.settings.section(WebchatSettings).visitor_token_days
        self.visitors = Visitors(lambda: self.tokens, lambda: self.store, days)

    async def start(self, store: Repositories) -> None:
        self._store = store
        if self._tokens is None:  # every router process on this store shares one generated key
            secret, _ = await store.secrets.sealed_secret("webchat-visitor-tokens", lambda: secrets.token_urlsafe(32))
            self._tokens = VisitorTokens(secret)

    @property
    def store(self) -> Repositories:
        assert self._store is not None, "start() first"
        return self._store

    @property
    def tokens(self) -> VisitorTokens:
        assert self._tokens is not None, "start() first"
        return self._tokens

    # --- the adapter protocol -------------------------------------------------------------

    def parse(self, body: bytes, headers: Mapping[str, str]) -> list[Inbound]:
        """One JSON message, ``{"id", "text", "name"?}``, for the account in the
        ``X-Omnirouter-Account`` header and the visitor in ``X-Omnirouter-Visitor``, both set by the
        route (the visitor by ``visitor_of``, the one rule for what a ``visitor_token`` names: it
        needs the store, so the parser reads no token itself); without a visitor, a new one."""
        payload = _json_object(body)
        account_id = headers.get("X-Omnirouter-Account", self._context.account_id)
        visitor = headers.get("X-Omnirouter-Visitor") or self.tokens.issue(account_id)[0]
        return [self.inbound(account_id, visitor, payload)]

    # --- visitor tokens -------------------------------------------------------------------

    async def visitor_of(self, account_id: str, token: object, inbox_id: str | None = None) -> tuple[str, str]:
        """What a visitor token names (visitors.py): the one rule on every path."""
        return await self.visitors.visitor_of(account_id, token, inbox_id)

    def inbound(
        self, account_id: str, visitor: str, payload: Mapping[str, Any], inbox_id: str | None = None
    ) -> Inbound:
        client_id, text, name = payload.get("id"), payload.get("text"), payload.get("name")
        if not isinstance(client_id, str) or not _CLIENT_ID.match(client_id):
            raise MalformedPayload("id must be 1-64 characters of letters, digits, _ . : -")
        if not isinstance(text, str) or not text.strip():
            raise MalformedPayload("text must be a non-empty string")
        if len(text) > self._max_text:
            raise MalformedPayload(f"text is longer than {self._max_text} characters")
        if name is not None and (not isinstance(name, str) or len(name) > 80):
            raise MalformedPayload("name must be a string of at most 80 characters")
        return Inbound(
            account_id=account_id,
            channel=self.name,
            external_id=f"{visitor}:{client_id}",
            sender=Identity(self.name, visitor),
            sender_name=(name or "").strip() or None,
            text=text.strip(),
            inbox_id=inbox_id,
        )

    async def send(self, outbound: Outbound) -> str:
        """Push the reply to the visitor's sockets open on this process (those on another one get
        it through the live feed: relay.py), once each; it is stored either way, and a browser
        that was offline gets it in the history of its next ``welcome``."""
        frame = outbound_frame(
            outbound, self.render_text(outbound), self._files.url_for(outbound.account_id, outbound.to.address)
        )
        sockets = self._sockets.get((outbound.account_id, outbound.to.address), ())
        mine = [sock for sock in list(sockets) if sock.inbox_id == outbound.inbox_id]  # its web chat's pages only
        await asyncio.gather(*(sock.send(frame) for sock in mine if sock.claim(outbound.message_id)))
        return outbound.message_id

    def following(self) -> bool:
        """Whether the live feed has anything to tell this channel: a visitor is connected here."""
        return self.relay.following()

    async def follow(self, event: Mapping[str, Any]) -> None:
        await self.relay.follow(event)

    async def typing(self, account_id: str, address: str, inbox_id: str | None = None) -> bool:
        """ "Typing…" on the visitor's open pages of that web chat (those connected to this router
        process): a visitor of two of the account's web chats sees it only where it is meant."""
        sockets = [sock for sock in self._sockets.get((account_id, address), ()) if sock.inbox_id == inbox_id]
        shown = await asyncio.gather(*(sock.send({"type": "typing"}) for sock in sockets))
        return any(shown)

    async def _visitor_typing(self, account_id: str, visitor: str, inbox_id: str | None) -> None:
        """Tell the consoles (through the live feed, so every router process) that the visitor is
        typing in their open conversation with a person; at most once per ``_TYPING_EVERY`` s."""
        key, now = (account_id, visitor), time.monotonic()
        if self._typing.get(key, 0.0) > now - _TYPING_EVERY:
            return
        self._typing[key] = now
        if len(self._typing) > 10_000:  # forget the visitors who stopped long ago
            self._typing = {k: at for k, at in self._typing.items() if at > now - _TYPING_EVERY}
        thread = await self.store.threads.open_thread_of(account_id, Identity(self.name, visitor), inbox_id)
        if thread is not None and str(thread.status) in ("queued", "assigned"):
            await self.store.events.emit_event(
                account_id, "typing", utcnow(), thread_id=thread.id, inbox=thread_key(thread)
            )

    async def shutdown(self) -> None:
        """Close every socket with "going away": browsers reconnect to the next router."""
        sockets = [sock for group in self._sockets.values() for sock in group]
        await asyncio.gather(*(sock.ws.close(code=WSCloseCode.GOING_AWAY, message=b"restarting") for sock in sockets))

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/chat", self.page),
            web.get("/webchat/ws", self.socket),
            web.post("/webchat/messages", self.post_message),
            web.get(self._files.route, self._files.serve),
            web.post("/webchat/files", self.upload),
        ]

    # --- routes ---------------------------------------------------------------------------

    async def page(self, request: web.Request) -> web.StreamResponse:
        """The chat page (an unknown or closed account or inbox is answered before: bot/web/chat/widget.py)."""
        return web.FileResponse(STATIC / "chat.html", headers={"Cache-Control": "no-cache"})

    async def upload(self, request: web.Request) -> web.Response:
        """A file or image the visitor sends (uploads.py)."""
        return await self._uploads.receive(request, *await self._places.of(request))

    async def fetch_attachment(self, account_id: str, ref: str) -> bytes:
        """A visitor's file, kept in the store from the start (uploads.py)."""
        return await self._uploads.kept(account_id, ref)

    async def post_message(self, request: web.Request) -> web.Response:
        """A message as JSON; an expired or revoked ``visitor_token`` starts a new visitor (the
        answer carries their token), a forged one is refused."""
        account_id, inbox_id = await self._places.of(request)
        body = await request.read()
        try:
            payload = _json_object(body)
            visitor, token = await self.visitor_of(account_id, payload.get("visitor_token"), inbox_id)
            inbound = self.inbound(account_id, visitor, payload, inbox_id)
        except MalformedPayload as exc:
            raise web.HTTPBadRequest(
                text=json.dumps({"error": "bad_message", "detail": str(exc)}), content_type="application/json"
            ) from None
        recorded, _ = await self.sink.receive(inbound)
        return web.json_response(
            {
                "message_id": recorded.message.id,
                "thread_id": recorded.thread.id,
                "duplicate": recorded.duplicate,
                "visitor_token": token,
            },
            status=202,
        )

    async def socket(self, request: web.Request) -> web.WebSocketResponse:
        account_id, inbox_id = await self._places.of(request)
        ws = web.WebSocketResponse(heartbeat=30, max_msg_size=self._max_text * 4 + 4096)
        await ws.prepare(request)
        try:
            visitor, token = await self.visitor_of(account_id, request.query.get("token") or None, inbox_id)
        except MalformedPayload:  # not ours (or another web chat's): the browser starts as a new visitor
            visitor, token = self.visitors.issue(account_id, inbox_id)
        name = request.query.get("name", "")[:80] or None
        sock = VisitorSocket(ws, inbox_id)
        key = (account_id, visitor)
        self._sockets.setdefault(key, set()).add(sock)
        sockets = self._context.metrics.webchat_sockets
        sockets.inc()
        try:
            welcome = await self._history(account_id, visitor, inbox_id)
            sock.given.update(str(m["message_id"]) for m in welcome["history"] if m.get("message_id"))
            await sock.send({"type": "welcome", "visitor_token": token, **welcome})
            async for frame in ws:
                if frame.type == WSMsgType.TEXT:
                    await self._on_frame(request.app, sock, account_id, visitor, name, frame.data)
                elif frame.type in (WSMsgType.BINARY,):
                    await sock.send({"type": "error", "code": "bad_frame", "detail": "send JSON text frames"})
        finally:
            sockets.dec()
            self._sockets[key].discard(sock)
            if not self._sockets[key]:
                del self._sockets[key]
        return ws

    async def _on_frame(
        self, app: web.Application, sock: VisitorSocket, account_id: str, visitor: str, name: str | None, data: str
    ) -> None:
        try:
            payload = load_json(data)
        except MalformedPayload:
            await sock.send({"type": "error", "code": "bad_json", "detail": "frame is not valid JSON"})
            return
        kind = payload.get("type") if isinstance(payload, dict) else None
        if kind == "ping":
            await sock.send({"type": "pong"})
            return
        if kind == "typing":
            try:
                await self._visitor_typing(account_id, visitor, sock.inbox_id)
            except StoreUnavailable:
                log_event(log, "webchat.typing_unavailable", logging.INFO)
            return
        if kind in SITE_FRAMES:  # what the embedding site says of its visitor (embedding.py)
            site = SiteFrames(self.store, self.visitors, account_id, sock.inbox_id)
            if (answer := await site.answer(visitor, payload)) is not None:
                await sock.send(answer)
            return
        if kind in FORM_FRAMES:  # the pre-chat and offline forms (visitor_forms.py)
            await sock.send(
                await VisitorForms(
                    self.store, self.sink, partial(self.inbound, inbox_id=sock.inbox_id), sock.inbox_id
                ).answer(account_id, visitor, payload)
            )
            return
        if kind != "message":
            await sock.send({"type": "error", "code": "bad_frame", "detail": "type must be message, typing or ping"})
            return
        client_id = payload.get("id")
        try:
            inbound = self.inbound(account_id, visitor, {"name": name, **payload}, sock.inbox_id)
        except MalformedPayload as exc:
            await sock.send({"type": "error", "code": "bad_message", "id": client_id, "detail": str(exc)})
            return
        try:
            if await self.store.privacy.visitor_revoked(account_id, visitor):  # erased while connected
                await sock.ws.close(code=_REVOKED, message=b"visitor revoked: reconnect as a new visitor")
                return
            recorded, dispatching = await self.sink.receive(inbound)
        except StoreUnavailable:
            await sock.send(
                {
                    "type": "error",
                    "code": "store_unavailable",
                    "id": client_id,
                    "retry": True,
                    "detail": "the router cannot store messages right now; resending",
                }
            )
            return
        message = recorded.message
        await sock.send(
            {
                "type": "ack",
                "id": client_id,
                "message_id": message.id,
                "thread_id": message.thread_id,
                "duplicate": recorded.duplicate,
            }
        )
        if dispatching is not None:
            result = await dispatching
            decision = result.to_doc() if result is not None else None
        else:
            decision = message.decision
        if decision:
            await sock.send({"type": "decision", "id": client_id, "message_id": message.id, **decision})

    async def _history(self, account_id: str, visitor: str, inbox_id: str | None) -> dict[str, Any]:
        url = self._files.url_for(account_id, visitor)
        try:
            return await visitor_history(self.store, account_id, visitor, url, inbox_id)
        except StoreUnavailable:
            log_event(log, "webchat.history_unavailable", logging.WARNING)
            return {"history": [], "history_unavailable": True}


def _json_object(body: bytes | str) -> dict[str, Any]:
    payload = load_json(body)
    if not isinstance(payload, dict):
        raise MalformedPayload("body must be a JSON object")
    return payload
