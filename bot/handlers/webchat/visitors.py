"""Who a web chat visitor is: what their signed token names, in which web chat inbox.

A token is signed for one web chat of an account: its first (``/chat?account=<id>``) or one of its
extra web chat inboxes (``&inbox=<inbox id>``, ``conversations/inboxes.py``). A token of one is
refused by every other, so a visitor of the shop's widget cannot read or write into the support
widget's conversations by changing the address they connect to, and every visitor (even a user
the site vouched for: embedding.py) is a different visitor in each inbox.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from aiohttp import web

from bot.handlers.kit.protocol import MalformedPayload
from bot.handlers.webchat.tokens import VisitorToken, VisitorTokens
from conversations.errors import StoreUnavailable
from conversations.repositories import Repositories

KNOWN_SECONDS = 10.0  # a disabled account or inbox is refused within this long


def token_scope(account_id: str, inbox_id: str | None) -> str:
    """What a visitor token is signed for: the account (its first web chat) or one of its inboxes
    (an account id has no ``/``)."""
    return account_id if inbox_id is None else f"{account_id}/{inbox_id}"


def not_found(error: str, detail: str) -> web.HTTPNotFound:
    return web.HTTPNotFound(text=json.dumps({"error": error, "detail": detail}), content_type="application/json")


class ChatPlaces:
    """Which web chat a request is for (``?account=`` and ``?inbox=``), checked against the store
    at most every ``KNOWN_SECONDS``: an unknown or disabled account or inbox is a JSON 404."""

    def __init__(self, default_account: str, store: Callable[[], Repositories]) -> None:
        self._default = default_account
        self._store = store
        self._known: dict[tuple[str, str | None], float] = {(default_account, None): float("inf")}

    async def of(self, request: web.Request) -> tuple[str, str | None]:
        """The account and the inbox (``None``: the account's first web chat) of ``request``."""
        account_id = request.query.get("account") or self._default
        inbox_id = request.query.get("inbox") or None
        if self._known.get((account_id, inbox_id), 0.0) >= time.monotonic():
            return account_id, inbox_id
        account = await self._store().accounts.get_account(account_id)
        if account is None or account.disabled:
            raise not_found("unknown_account", f"no account {account_id!r}")
        if inbox_id is not None:
            inbox = await self._store().inboxes.get_inbox(inbox_id)
            if inbox is None or inbox.account_id != account_id or inbox.channel != "webchat":
                raise not_found("unknown_inbox", f"no web chat {inbox_id!r} in account {account_id!r}")
            if inbox.disabled:
                raise not_found("inbox_disabled", f"the web chat {inbox_id!r} is closed")
        if len(self._known) > 10_000:
            self._known = {key: until for key, until in self._known.items() if until == float("inf")}
        self._known[(account_id, inbox_id)] = time.monotonic() + KNOWN_SECONDS
        return account_id, inbox_id


class Visitors:
    """Issues visitor tokens and reads them: expired ones (``visitor_token_days``), revoked ones
    (the visitor's contact was erased) and those of the previous format after their grace time
    name a new visitor."""

    def __init__(self, tokens: Callable[[], VisitorTokens], store: Callable[[], Repositories], days: float) -> None:
        self._tokens = tokens
        self._store = store
        self._token_seconds = days * 86400
        self._legacy_until: float | None = None  # tokens of the previous format: honoured until then

    def issue(self, account_id: str, inbox_id: str | None = None) -> tuple[str, str]:
        """A new visitor of the web chat and their token."""
        return self._tokens().issue(token_scope(account_id, inbox_id))

    def token_for(self, account_id: str, inbox_id: str | None, visitor: str) -> str:
        return self._tokens().token_for(token_scope(account_id, inbox_id), visitor)

    def sign(self, text: str) -> str:
        """The HMAC of ``text`` under the visitor tokens' key."""
        return self._tokens().sign(text)

    async def visitor_of(self, account_id: str, token: object, inbox_id: str | None = None) -> tuple[str, str]:
        """What a visitor token names, on every path (the socket, ``POST /webchat/messages``, an
        upload): its visitor and the token to keep when it is signed for this web chat, not expired
        and not revoked; else a new visitor and their token. ``MalformedPayload`` when it is not
        ours (or another web chat's). With the store out, a token that is ours and not expired is
        taken: its messages cannot be stored until the store is back, and each is checked then."""
        read = self._signed(token_scope(account_id, inbox_id), token)
        try:
            honoured = await self._honoured(account_id, read)
        except StoreUnavailable:
            honoured = read is not None and not self._expired(read, time.time())
        if read is None or not honoured:
            return self.issue(account_id, inbox_id)
        return read.visitor, self._renewed(token_scope(account_id, inbox_id), read, str(token))

    def _signed(self, scope: str, token: object) -> VisitorToken | None:
        """The token read (``None``: no token); ``MalformedPayload`` if it is not ours."""
        if token is None:
            return None
        read = self._tokens().read(scope, token) if isinstance(token, str) else None
        # an inbox's tokens were never of the old undated form: one that reads so was made from a
        # dated one (its visitor and stamp taken as one visitor id), to escape expiry
        if read is None or (read.issued is None and "/" in scope):
            raise MalformedPayload("visitor_token is not valid for this web chat")
        return read

    def _expired(self, read: VisitorToken, now: float) -> bool:
        if read.issued is None:
            return self._legacy_until is not None and now > self._legacy_until
        return now - read.issued > self._token_seconds

    async def _honoured(self, account_id: str, read: VisitorToken | None) -> bool:
        """Whether a validly signed token still names its visitor: not expired, and the visitor's
        contact was not erased (its tokens are revoked then)."""
        if read is None:
            return False
        now, privacy = time.time(), self._store().privacy
        if read.issued is None and self._legacy_until is None:
            until_ms = await privacy.legacy_tokens_until(int((now + self._token_seconds) * 1000))
            self._legacy_until = until_ms / 1000
        return not self._expired(read, now) and not await privacy.visitor_revoked(account_id, read.visitor)

    def _renewed(self, scope: str, read: VisitorToken, token: str) -> str:
        """The token to hand back: a fresh one once half its life has passed (or it is of the
        previous format), so a visitor who keeps coming back keeps their conversation."""
        now = time.time()
        if read.issued is None or now - read.issued > self._token_seconds / 2:
            return self._tokens().token_for(scope, read.visitor, now)
        return token
