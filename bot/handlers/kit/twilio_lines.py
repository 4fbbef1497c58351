"""Which Twilio number a webhook is for, and which number a reply goes out from.

The install's own number is the ``[twilio]``/``[sms]`` settings (an install may have none:
``sms.for_accounts``); every other number is a Twilio-number inbox of some account
(``conversations/inboxes.py``, channel ``sms``, route ``sms:<E.164>``, unique across the install),
which ``serves`` texts, calls or both. Twilio calls one shared URL (``/webhooks/sms``,
``/webhooks/voice``) for every number and names ours in the form
(:func:`bot.handlers.kit.twilio.our_number`): a number that is an inbox's is that inbox's, checked
with that inbox's auth token (Twilio signs the URL it called, the shared one, with the token of the
account that owns the number); the install's own number (or any number, when the install sends
through a messaging service and so has no one number) is the install's, when the install serves
this channel itself; any other, and a number whose inbox does not serve this channel, is a 404,
logged, and nothing is stored.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from aiohttp import web

from bot.handlers.kit.accounts import PerAccount
from bot.handlers.kit.protocol import ChannelContext, PermanentSendError
from bot.handlers.kit.twilio import TwilioGateway, TwilioLine, our_number
from bot.handlers.kit.twilio_settings import TwilioSettings
from bot.handlers.sms.settings import SmsSettings
from bot.logs import log_event
from bot.setting_fields import SettingsError

if TYPE_CHECKING:
    from conversations.repositories import Repositories

log = logging.getLogger("omnirouter.handlers.twilio")
_REQUIRED = ("account_sid", "auth_token", "from_number")
# what a Twilio-number inbox takes: texts, calls, or both
SERVES = ("sms", "calls", "both")
_TAKES = {"sms": ("sms", "both"), "voice": ("calls", "both")}


def serves_of(config: Mapping[str, Any], install_takes_calls: bool = False) -> str:
    """What the inbox's number is for: ``sms``, ``calls`` or ``both``. Left out (as every number
    stored before ``serves`` existed): texts, and calls too where the install records calls
    (``voice.enabled``), which is what such a number took then."""
    given = config.get("serves")
    if given in SERVES:
        return str(given)
    return "both" if install_takes_calls else "sms"


def number_route(number: str) -> str:
    """The route of an SMS inbox: what Twilio names it by (its number, E.164)."""
    return f"sms:{number}"


class TwilioLines:
    """The install's gateway and one per SMS inbox (read from the store, refreshed as
    :class:`PerAccount` does), found by the number a webhook names or the inbox a reply is for.
    ``install_serves``: whether the install's own number takes this channel's webhooks."""

    def __init__(self, channel: str, context: ChannelContext, install: Any, install_serves: bool = True) -> None:
        self._channel = channel
        self._context = context
        self.install = install
        self.install_serves = install_serves
        self.install_number = context.settings.section(SmsSettings).from_number
        self._calls_recorded = self._channel == "voice" and install_serves  # ``voice.enabled``
        self._timeout = context.settings.section(TwilioSettings).timeout
        self._inboxes: PerAccount[TwilioGateway] = PerAccount("sms", context.account_id, None, self._build)
        self._store: Repositories | None = None

    def _build(self, account_id: str, config: Mapping[str, Any]) -> TwilioGateway:
        missing = [key for key in _REQUIRED if not config.get(key)]
        if missing:
            raise SettingsError(f"account {account_id}: the SMS inbox needs {', '.join(missing)}")
        if self._channel == "sms" and serves_of(config) == "calls":
            raise SettingsError(f"the number {config['from_number']} serves calls only: no texts go out from it")
        line = TwilioLine(
            str(config["account_sid"]),
            str(config["auth_token"]),
            str(config.get("api_base") or ""),
            str(config["from_number"]),
            timeout=self._timeout,
            guarded=True,
        )
        return TwilioGateway(self._context, line, account_id)

    def attach(self, store: Repositories) -> None:
        self._store = store
        self._inboxes.attach(store)

    async def for_webhook(self, request: web.Request, body: bytes) -> tuple[Any, str | None, str]:
        """The gateway that checks and reads this webhook, the inbox it is for (``None``: the
        install's own number) and what that number serves (``sms``, ``calls``, ``both``); a JSON
        404 for a number that is no one's, or whose inbox does not take this channel."""
        assert self._store is not None, "attach() first"
        number = our_number(body, call=self._channel == "voice")
        if number and number != self.install_number:  # no inbox may take the install's number: no read
            inbox = await self._store.inboxes.inbox_by_route(number_route(number))
            if inbox is not None and inbox.channel == "sms":
                serves = serves_of(inbox.config, self._calls_recorded)
                if serves not in _TAKES[self._channel]:
                    raise self._not_found(request, "not_served", f"the inbox of {number} does not take {self._what}")
                return await self._inboxes.for_webhook(inbox.account_id, inbox.id), inbox.id, serves
        # the install's number, or (a messaging service's numbers are the install's) any other
        if self.install_serves and (number == self.install_number or not self.install_number):
            return self.install, None, "both"
        if number and number == self.install_number:
            raise self._not_found(
                request, "not_served", f"the install's own number {number} takes no {self._what} here"
            )
        raise self._not_found(
            request, "unknown_number", f"{number or 'the number'} is no inbox's number on this install"
        )

    @property
    def _what(self) -> str:
        return "calls" if self._channel == "voice" else "texts"

    def _not_found(self, request: web.Request, error: str, detail: str) -> web.HTTPNotFound:
        log_event(log, f"twilio.{error}", logging.WARNING, channel=self._channel, path=request.path)
        return web.HTTPNotFound(text=json.dumps({"error": error, "detail": detail}), content_type="application/json")

    async def for_send(self, account_id: str, inbox_id: str | None) -> Any:
        """The gateway a reply goes out through: the inbox's number, or the install's."""
        if inbox_id is None:
            if not self.install_serves:
                raise PermanentSendError("this install has no Twilio number of its own (only its accounts' inboxes)")
            return self.install
        return await self._inboxes.for_send(account_id, inbox_id)

    async def for_file(self, account_id: str, inbox_id: str | None) -> Any | None:
        if inbox_id is None:
            return self.install if self.install_serves else None
        return await self._inboxes.quietly(account_id, inbox_id)

    async def close(self) -> None:
        await self._inboxes.close_all(lambda gateway: gateway.close())
