"""The web chat channel: a page at ``/chat`` talking to the router over a WebSocket.

Visitors are identified by a signed token the router issues on first contact and the browser
keeps (``<visitor id>.<HMAC>``), so nobody can read another visitor's conversation by guessing an
id. Each browser message carries a client-chosen id; the browser resends unacknowledged messages
with the same id after a reconnect, and the inbound dedup key (visitor + id) stores them once.

Frames, browser -> router: ``{"type": "message", "id": "...", "text": "..."}``, ``{"type": "ping"}``.
Router -> browser: ``welcome`` (token, history), ``ack`` (recorded), ``decision`` (what the router
did), ``message`` (a reply), ``error`` (with a ``code``; ``retry: true`` when resending may work).

``POST /webchat/messages`` takes the same message as JSON for server-side integrations and load
tests: 202 once recorded.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import re
import secrets
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from bot.handlers.base import BaseAdapter, Capabilities, ChannelContext, MalformedPayload
from bot.handlers.payload import load_json
from bot.handlers.signatures import as_bytes, same_secret
from bot.keys import METRICS, PIPELINE
from bot.logs import log_event
from conversations.models import Identity, Inbound, Message, Outbound
from conversations.store import Store, StoreUnavailable

log = logging.getLogger("omnirouter.handlers.webchat")

STATIC = Path(__file__).resolve().parent.parent / "web" / "static"
_CLIENT_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
_HISTORY = 50


class VisitorTokens:
    """Issues and checks visitor tokens: ``<visitor id>.<HMAC-SHA256 of account and id>``."""

    def __init__(self, secret: str) -> None:
        self._key = secret.encode()

    def issue(self, account_id: str) -> tuple[str, str]:
        visitor = "v" + secrets.token_hex(12)
        return visitor, self.token_for(account_id, visitor)

    def token_for(self, account_id: str, visitor: str) -> str:
        return f"{visitor}.{self._sign(account_id, visitor)}"

    def read(self, account_id: str, token: str) -> str | None:
        visitor, _, signature = token.partition(".")
        if not visitor or not signature:
            return None
        expected = self._sign(account_id, visitor)
        return visitor if same_secret(signature, expected) else None

    def _sign(self, account_id: str, visitor: str) -> str:
        digest = hmac.new(self._key, as_bytes(f"{account_id}:{visitor}"), hashlib.sha256)
        return digest.hexdigest()[:32]


class _VisitorSocket:
    """One browser connection; sends are serialised (replies and acks come from several tasks)."""

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws
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


class WebchatAdapter(BaseAdapter):
    name = "webchat"

    def __init__(self, context: ChannelContext) -> None:
        self._context = context
        self._tokens = VisitorTokens(context.settings.webchat.secret) if context.settings.webchat.secret else None
        self._store: Store | None = None
        self._max_text = context.settings.webchat.max_text_length
        self.capabilities = Capabilities(buttons=True, max_text_length=self._max_text)
        self._sockets: dict[tuple[str, str], set[_VisitorSocket]] = {}
        self._accounts: dict[str, float] = {context.account_id: float("inf")}  # account -> known until

    async def start(self, store: Store) -> None:
        self._store = store
        if self._tokens is None:  # every router process on this store shares one generated key
            secret = await store.shared_secret("webchat-visitor-tokens", lambda: secrets.token_urlsafe(32))
            self._tokens = VisitorTokens(secret)

    @property
    def store(self) -> Store:
        assert self._store is not None, "start() first"
        return self._store

    @property
    def tokens(self) -> VisitorTokens:
        assert self._tokens is not None, "start() first"
        return self._tokens

    # --- the adapter protocol -------------------------------------------------------------

    def parse(self, body: bytes, headers: Mapping[str, str]) -> list[Inbound]:
        """One JSON message: ``{"visitor_token"?, "id", "text", "name"?}`` for the account in
        the ``X-Omnirouter-Account`` header (set by the route from the URL)."""
        payload = load_json(body)
        if not isinstance(payload, dict):
            raise MalformedPayload("body must be a JSON object")
        account_id = headers.get("X-Omnirouter-Account", self._context.account_id)
        token = payload.get("visitor_token")
        visitor = self.tokens.issue(account_id)[0] if token is None else None
        if token is not None and isinstance(token, str):
            visitor = self.tokens.read(account_id, token)
        if visitor is None:
            raise MalformedPayload("visitor_token is not valid for this account")
        return [self.inbound(account_id, visitor, payload)]

    def inbound(self, account_id: str, visitor: str, payload: Mapping[str, Any]) -> Inbound:
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
        )

    async def send(self, outbound: Outbound) -> str:
        """Push the reply to the visitor's open sockets; it is stored either way, and a browser
        that was offline gets it in the history of its next ``welcome``."""
        frame = _message_frame_from_outbound(outbound, self.render_text(outbound))
        sockets = list(self._sockets.get((outbound.account_id, outbound.to.address), ()))
        await asyncio.gather(*(sock.send(frame) for sock in sockets))
        return outbound.message_id

    async def shutdown(self) -> None:
        """Close every socket with "going away": browsers reconnect to the next router."""
        sockets = [sock for group in self._sockets.values() for sock in group]
        await asyncio.gather(*(sock.ws.close(code=WSCloseCode.GOING_AWAY, message=b"restarting") for sock in sockets))

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/chat", self.page),
            web.get("/webchat/ws", self.socket),
            web.post("/webchat/messages", self.post_message),
        ]

    # --- routes ---------------------------------------------------------------------------

    async def page(self, request: web.Request) -> web.StreamResponse:
        return web.FileResponse(STATIC / "chat.html", headers={"Cache-Control": "no-cache"})

    async def post_message(self, request: web.Request) -> web.Response:
        account_id = await self._account(request)
        body = await request.read()
        try:
            inbound = self.parse(body, {"X-Omnirouter-Account": account_id})[0]
        except MalformedPayload as exc:
            raise web.HTTPBadRequest(text=json.dumps({"error": "bad_message", "detail": str(exc)}),
                                     content_type="application/json") from None
        recorded, _ = await request.app[PIPELINE].receive(inbound)
        visitor = inbound.sender.address
        token = self.tokens.token_for(account_id, visitor)
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
        account_id = await self._account(request)
        ws = web.WebSocketResponse(heartbeat=30, max_msg_size=self._max_text * 4 + 4096)
        await ws.prepare(request)
        visitor = self.tokens.read(account_id, request.query.get("token", ""))
        token = request.query.get("token", "")
        if visitor is None:
            visitor, token = self.tokens.issue(account_id)
        name = request.query.get("name", "")[:80] or None
        sock = _VisitorSocket(ws)
        key = (account_id, visitor)
        self._sockets.setdefault(key, set()).add(sock)
        metrics = request.app[METRICS]
        metrics.webchat_sockets.inc()
        try:
            await sock.send({"type": "welcome", "visitor_token": token, **await self._history(account_id, visitor)})
            async for frame in ws:
                if frame.type == WSMsgType.TEXT:
                    await self._on_frame(request.app, sock, account_id, visitor, name, frame.data)
                elif frame.type in (WSMsgType.BINARY,):
                    await sock.send({"type": "error", "code": "bad_frame", "detail": "send JSON text frames"})
        finally:
            metrics.webchat_sockets.dec()
            self._sockets[key].discard(sock)
            if not self._sockets[key]:
                del self._sockets[key]
        return ws

    async def _on_frame(
        self, app: web.Application, sock: _VisitorSocket, account_id: str, visitor: str,
        name: str | None, data: str,
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
        if kind != "message":
            await sock.send({"type": "error", "code": "bad_frame", "detail": "type must be message or ping"})
            return
        client_id = payload.get("id")
        try:
            inbound = self.inbound(account_id, visitor, {"name": name, **payload})
        except MalformedPayload as exc:
            await sock.send({"type": "error", "code": "bad_message", "id": client_id, "detail": str(exc)})
            return
        try:
            recorded, dispatching = await app[PIPELINE].receive(inbound)
        except StoreUnavailable:
            await sock.send({"type": "error", "code": "store_unavailable", "id": client_id, "retry": True,
                             "detail": "the router cannot store messages right now; resending"})
            return
        message = recorded.message
        await sock.send({"type": "ack", "id": client_id, "message_id": message.id,
                         "thread_id": message.thread_id, "duplicate": recorded.duplicate})
        if dispatching is not None:
            result = await dispatching
            decision = result.to_doc() if result is not None else None
        else:
            decision = message.decision
        if decision:
            await sock.send({"type": "decision", "id": client_id, "message_id": message.id, **decision})

    async def _history(self, account_id: str, visitor: str) -> dict[str, Any]:
        try:
            thread = await self.store.open_thread_of(account_id, Identity(self.name, visitor))
            messages = await self.store.thread_messages(thread.id, _HISTORY) if thread else []
        except StoreUnavailable:
            log_event(log, "webchat.history_unavailable", logging.WARNING)
            return {"history": [], "history_unavailable": True}
        return {
            "thread_id": thread.id if thread else None,
            "status": str(thread.status) if thread else None,
            "history": [_message_frame(m) for m in messages],
        }

    async def _account(self, request: web.Request) -> str:
        account_id = request.query.get("account", self._context.account_id)
        if self._accounts.get(account_id, 0.0) < time.monotonic():
            account = await self.store.get_account(account_id)
            if account is None or account.disabled:
                raise web.HTTPNotFound(
                    text=json.dumps({"error": "unknown_account", "detail": f"no account {account_id!r}"}),
                    content_type="application/json",
                )
            self._accounts[account_id] = time.monotonic() + 10.0  # a disabled account is refused within 10 s
        return account_id


def _message_frame(message: Message) -> dict[str, Any]:
    return {
        "type": "message",
        "message_id": message.id,
        "thread_id": message.thread_id,
        "direction": str(message.direction),
        "sender": message.sender.get("kind", "customer"),
        "text": message.text,
        "options": message.meta.get("options", []),
        "created_at": message.created_at.isoformat(),
        "client_id": (message.external_id or "").partition(":")[2] or None,
    }


def _message_frame_from_outbound(outbound: Outbound, text: str) -> dict[str, Any]:
    return {
        "type": "message",
        "message_id": outbound.message_id,
        "thread_id": outbound.thread_id,
        "direction": "out",
        "sender": outbound.meta.get("sender_kind", "bot"),
        "text": text,
        "options": list(outbound.options),
    }
