"""One provider client per account, and per each of its extra inboxes.

The account the install serves first (``account.id``) takes its channel settings from the settings
file; any other account takes them from its document in the store (``accounts.<id>.channels.
<channel>``, secrets sealed at rest and opened by the store); an account's extra inbox of the
channel (``conversations/inboxes.py``) from the inbox's document. Each is read on first use and read
again at most every ``REFRESH_SECONDS``: settings an admin saves in the console (or through the API)
are used by every router process within seconds, and a disabled account's or inbox's webhooks are
refused.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from aiohttp import web

from bot.handlers.kit.protocol import PermanentSendError
from bot.logs import log_event
from bot.setting_fields import SettingsError

if TYPE_CHECKING:
    from conversations.repositories import Repositories
    from conversations.tenant_models import Account

log = logging.getLogger("omnirouter.handlers")

C = TypeVar("C")
REFRESH_SECONDS = 10.0


class PerAccount(Generic[C]):
    """Builds and caches ``C`` (a bot, a Graph API client) for each account that has ``channel``."""

    def __init__(
        self,
        channel: str,
        default_account: str,
        default_config: Mapping[str, Any] | None,
        build: Callable[[str, Mapping[str, Any]], C],
    ) -> None:
        self._channel = channel
        self._build = build
        self._default = default_account if default_config is not None else None
        self._clients: dict[str, C] = {}
        self._seen: dict[str, tuple[float, str]] = {}  # account -> (next check, settings fingerprint)
        self._retired: list[C] = []  # replaced clients, closed at shutdown (a send may still use one)
        self._store: Repositories | None = None
        self._lock = asyncio.Lock()
        if default_config is not None:
            self._clients[default_account] = build(default_account, default_config)

    def attach(self, store: Repositories) -> None:
        self._store = store

    def loaded(self) -> dict[str, C]:
        return dict(self._clients)

    async def get(self, account_id: str, inbox_id: str | None = None) -> C | None:
        """The client of the account (or of its extra inbox ``inbox_id``), or ``None`` if it has no
        such channel configured."""
        key = _key(account_id, inbox_id)
        client = self._clients.get(key)
        if self._store is None or key == self._default:
            return client
        seen = self._seen.get(key)
        if seen is not None and seen[0] > time.monotonic():
            return client
        async with self._lock:
            return await self._refresh(account_id, inbox_id)

    async def _settings(self, account_id: str, inbox_id: str | None) -> tuple[Mapping[str, Any] | None, list[str]]:
        """The channel's settings of the account or its inbox as stored (``None``: none, or disabled)
        and why any of their secrets did not open."""
        assert self._store is not None
        account = await self._store.accounts.get_account(account_id)
        if account is None or account.disabled:
            return None, []
        if inbox_id is None:
            config = account.channels.get(self._channel)
            return config, _unopened(account, self._channel) if config is not None else []
        inbox = await self._store.inboxes.get_inbox(inbox_id)
        if inbox is None or inbox.account_id != account_id or inbox.channel != self._channel or inbox.disabled:
            return None, []
        return inbox.config, sorted((inbox.sealing_problems or {}).values())

    async def _refresh(self, account_id: str, inbox_id: str | None) -> C | None:
        key = _key(account_id, inbox_id)
        seen = self._seen.get(key)
        if seen is not None and seen[0] > time.monotonic():  # another task refreshed it meanwhile
            return self._clients.get(key)
        config, unopened = await self._settings(account_id, inbox_id)
        if unopened:  # never used as stored: the channel reports it until an admin enters them again
            if key in self._clients:
                self._retired.append(self._clients.pop(key))
            self._seen.pop(key, None)
            raise SettingsError("; ".join(unopened))
        fingerprint = json.dumps(config, sort_keys=True, default=str) if isinstance(config, Mapping) else ""
        current = self._clients.get(key)
        if seen is None or seen[1] != fingerprint:
            if current is not None:
                self._retired.append(self._clients.pop(key))
            if isinstance(config, Mapping):
                self._clients[key] = self._build(account_id, config)
        self._seen[key] = (time.monotonic() + REFRESH_SECONDS, fingerprint)
        return self._clients.get(key)

    async def for_webhook(self, account_id: str, inbox_id: str | None = None) -> C:
        """The client an incoming webhook is for; a JSON 404 when the account (or its inbox) has none."""
        try:
            client = await self.get(account_id, inbox_id)
        except SettingsError as exc:
            log_event(
                log,
                "channel.account_misconfigured",
                logging.ERROR,
                channel=self._channel,
                account=account_id,
                inbox=inbox_id,
                error=str(exc),
            )
            client = None
        if client is None:
            where = f"account {account_id!r}" + (f", inbox {inbox_id!r}" if inbox_id else "")
            log_event(
                log, "channel.unknown_inbox", logging.WARNING, channel=self._channel, account=account_id, inbox=inbox_id
            )
            raise web.HTTPNotFound(
                text=json.dumps({"error": "unknown_account", "detail": f"no {self._channel} set-up for {where}"}),
                content_type="application/json",
            )
        return client

    async def for_send(self, account_id: str, inbox_id: str | None = None) -> C:
        """The client to send with; a ``PermanentSendError`` when the account (or inbox) has none."""
        try:
            client = await self.get(account_id, inbox_id)
        except SettingsError as exc:
            raise PermanentSendError(str(exc)) from None
        if client is None:
            where = f"account {account_id}" + (f", inbox {inbox_id}" if inbox_id else "")
            raise PermanentSendError(f"no {self._channel} set-up for {where}")
        return client

    async def quietly(self, account_id: str, inbox_id: str | None = None) -> C | None:
        """The client for a side task (templates, a download); ``None``, logged, when the account's
        settings are unusable."""
        try:
            return await self.get(account_id, inbox_id)
        except SettingsError as exc:
            log_event(
                log,
                "channel.account_misconfigured",
                logging.ERROR,
                channel=self._channel,
                account=account_id,
                error=str(exc),
            )
            return None

    async def close_all(self, close: Callable[[C], Awaitable[None]]) -> None:
        for client in [*self._clients.values(), *self._retired]:
            await close(client)


def _key(account_id: str, inbox_id: str | None) -> str:
    # an account id has no colon; an inbox is found only under its own account
    return account_id if inbox_id is None else f"{account_id}:inbox:{inbox_id}"


def _unopened(account: Account | None, channel: str) -> list[str]:
    """Why the account's secrets of ``channel`` did not open (moved, altered, stored in clear)."""
    problems = (account.sealing_problems or {}) if account else {}
    return [why for field, why in sorted(problems.items()) if field.startswith(f"{channel}.")]
