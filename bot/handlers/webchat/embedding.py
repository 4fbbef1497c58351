"""What the site embedding the chat (the website widget) says about its visitor, through the chat's
socket: ``{"type": "label", "label"}`` (``omnirouter.setLabel``) labels the visitor's open
conversation; ``{"type": "identify", "user_id", "user_hash"}`` (``omnirouter.setUser``) proves who the
visitor is, signed by the site's server.

Identity verification: the site computes ``user_hash = HMAC-SHA256(account's widget secret,
user_id)`` (hexadecimal) on its server and hands both to the widget. When the hash matches, the
visitor becomes the one web chat visitor of that user in that account, whatever the browser or
device, so their conversations follow them; the answer is ``{"type": "identified",
"visitor_token"}``, which the page then connects with. The account has no secret until its admin
makes one (the account page), and until then every ``identify`` is refused.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bot.handlers.kit.signatures import same_secret
from bot.handlers.webchat.visitors import Visitors, token_scope
from bot.logs import log_event
from conversations.errors import StoreUnavailable
from conversations.repositories import Repositories
from conversations.traffic import Identity

log = logging.getLogger("omnirouter.handlers.webchat")

SITE_FRAMES = ("label", "identify")
_LABEL = re.compile(r"^[\w .:-]{1,64}$")  # as the console's filters take a label
_HASH = re.compile(r"^[0-9a-fA-F]{64}$")
_USER_ID_MAX = 200


def identity_secret_name(account_id: str) -> str:
    """Where the account's widget secret is kept (sealed, with the install's other secrets)."""
    return f"widget-identity:{account_id}"


def user_hash(secret: str, user_id: str) -> str:
    """What the site's server computes for ``user_id``: HMAC-SHA256 under the widget secret, in hex."""
    return hmac.new(secret.encode(), user_id.encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class SiteFrames:
    """Answers ``SITE_FRAMES`` in one web chat: the account's first (``inbox_id`` None) or one of
    its web chat inboxes (a user the site vouched for is one visitor per inbox: visitors.py)."""

    store: Repositories
    visitors: Visitors
    account_id: str
    inbox_id: str | None = None

    async def answer(self, visitor: str, payload: Mapping[str, Any]) -> dict[str, Any] | None:
        """The answer to one of ``SITE_FRAMES`` (``None``: nothing to answer)."""
        try:
            if payload.get("type") == "label":
                await self._label(visitor, payload.get("label"))
                return None
            return await self._identify(payload.get("user_id"), payload.get("user_hash"))
        except StoreUnavailable:  # the page says it again with its next message, or on its next connection
            log_event(log, "webchat.site_frame_unavailable", logging.INFO)
            return {"type": "error", "code": "store_unavailable", "retry": False, "detail": "try again later"}

    async def _label(self, visitor: str, label: object) -> None:
        if not isinstance(label, str) or not _LABEL.match(label.strip()):
            return
        thread = await self.store.threads.open_thread_of(self.account_id, Identity("webchat", visitor), self.inbox_id)
        if thread is not None and label.strip() not in thread.labels:
            await self.store.threads.set_thread_fields(thread.id, labels=[*thread.labels, label.strip()])

    async def _identify(self, user_id: object, given: object) -> dict[str, Any]:
        refused = {"type": "error", "code": "bad_identity", "detail": "user_hash does not match user_id"}
        if not isinstance(user_id, str) or not 0 < len(user_id) <= _USER_ID_MAX:
            return refused
        if not isinstance(given, str) or not _HASH.match(given):
            return refused
        secret = await self.store.secrets.read_sealed_secret(identity_secret_name(self.account_id))
        if secret is None or not same_secret(given.lower(), user_hash(secret, user_id)):
            log_event(log, "webchat.identity_refused", logging.INFO, account=self.account_id)
            return refused
        scope = token_scope(self.account_id, self.inbox_id)
        visitor = "u" + self.visitors.sign(f"user:{scope}:{user_id}")[:24]  # the same on every device
        return {"type": "identified", "visitor_token": self.visitors.token_for(self.account_id, self.inbox_id, visitor)}
