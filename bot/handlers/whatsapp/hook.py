"""The webhook view of one WhatsApp number: its signature check, and which inbox each of the
payload's numbers delivers into.

Meta sends the events of every number of one app to the app's one callback URL, signed with the
app's secret. So a payload that came to one number's URL may carry another number's messages: each
change names its number (``metadata.phone_number_id``), and one that is another inbox of the same
account, under the same app secret, is that inbox's. A number that is no inbox of the account, or
one under another app, is left out (logged), as before inboxes.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable, Mapping

from aiohttp import web

from bot.handlers.kit.inboxes import in_inbox
from bot.handlers.kit.payload import Payload
from bot.handlers.kit.protocol import MalformedPayload, UnsupportedEvent, VerificationError
from bot.handlers.kit.signatures import same_secret
from bot.handlers.whatsapp.consent import mark_keywords
from bot.handlers.whatsapp.payload import parse_payload
from conversations.traffic import ProviderEvent

# the account's other inboxes among these phone number ids, under this app secret: number -> inbox id
Neighbours = Callable[[str, set[str], str], Awaitable[dict[str, str]]]


class NumberHook:
    """One number's webhooks: checked with its app secret, parsed for it and its app neighbours."""

    name = "whatsapp"

    def __init__(
        self,
        account_id: str,
        phone_number_id: str,
        app_secret: str,
        inbox_id: str | None,
        keyword_replies: Mapping[str, str],
        neighbours: Neighbours,
    ) -> None:
        self._account_id = account_id
        self._number = phone_number_id
        self._app_secret = app_secret
        self._inbox_id = inbox_id
        self._keyword_replies = keyword_replies
        self._neighbours = neighbours
        self._routes: dict[str, str] = {}
        self._payload: Payload | None = None  # read once, by verify(), for parse() too

    async def verify(self, request: web.Request, body: bytes) -> None:
        given = request.headers.get("X-Hub-Signature-256", "")
        if not given:
            raise VerificationError("missing X-Hub-Signature-256")
        expected = "sha256=" + hmac.new(self._app_secret.encode(), body, hashlib.sha256).hexdigest()
        if not same_secret(given, expected):
            raise VerificationError.forbidden("X-Hub-Signature-256 does not match the body")
        try:
            self._payload = Payload.parse(body)
        except MalformedPayload:  # parse() says what is wrong with it
            return
        others = _numbers(self._payload) - {self._number}
        if others:
            self._routes = await self._neighbours(self._account_id, others, self._app_secret)

    def parse(self, body: bytes, headers: Mapping[str, str]) -> list[ProviderEvent]:
        payload = self._payload or Payload.parse(body)
        try:
            items = self._of(payload, self._number, self._inbox_id)
        except UnsupportedEvent:
            if not self._routes:
                raise
            items = []
        for number, inbox_id in sorted(self._routes.items()):
            try:
                items += self._of(payload, number, inbox_id)
            except UnsupportedEvent:
                continue
        if not items:
            raise UnsupportedEvent("no messages or statuses of this account's numbers in the payload")
        return items

    def _of(self, payload: Payload, number: str, inbox_id: str | None) -> list[ProviderEvent]:
        events = parse_payload(payload, self._account_id, number)
        # message ids (wamid) are unique across numbers: kept as Meta gives them
        return in_inbox(mark_keywords(events, self._keyword_replies), inbox_id, scope_ids=False)


def _numbers(payload: Payload) -> set[str]:
    """The phone number ids a payload's changes name (nothing when it is not what Meta sends)."""
    try:
        changes = [c for e in payload.objects("entry") for c in e.objects("changes")]
        metadata = [c.obj("value").opt_obj("metadata") for c in changes]
        return {n for m in metadata if m is not None and (n := m.opt_string("phone_number_id"))}
    except MalformedPayload:  # a malformed change: parse() leaves it out and says why
        return set()
