"""One provider client per account.

The account the install serves first (``account.id``) takes its channel settings from the settings
file; any other account takes them from its document in the store (``accounts.<id>.channels.
<channel>``, secrets sealed at rest and opened by the store), read on first use and read again at
most every ``REFRESH_SECONDS``: settings an admin saves in the console (or through the API) are
used by every router process within seconds, and a disabled account's webhooks are refused.
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

    async def get(self, account_id: str) -> C | None:
        """The account's client, or ``None`` if the account has no such channel configured."""
        client = self._clients.get(account_id)
        if self._store is None or account_id == self._default:
            return client
        seen = self._seen.get(account_id)
        if seen is not None and seen[0] > time.monotonic():
            return client
        async with self._lock:
            return await self._refresh(account_id)

    async def _refresh(self, account_id: str) -> C | None:
        assert self._store is not None
        seen = self._seen.get(account_id)
        if seen is not None and seen[0] > time.monotonic():  # another task refreshed it meanwhile
            return self._clients.get(account_id)
        account = await self._store.accounts.get_account(account_id)
        config = account.channels.get(self._channel) if account and not account.disabled else None
        unopened = _unopened(account, self._channel) if config is not None else []
        if unopened:  # never used as stored: the channel reports it until an admin enters them again
            if account_id in self._clients:
                self._retired.append(self._clients.pop(account_id))
            self._seen.pop(account_id, None)
            raise SettingsError("; ".join(unopened))
        fingerprint = json.dumps(config, sort_keys=True, default=str) if isinstance(config, Mapping) else ""
        current = self._clients.get(account_id)
        if seen is None or seen[1] != fingerprint:
            if current is not None:
                self._retired.append(self._clients.pop(account_id))
            if isinstance(config, Mapping):
                self._clients[account_id] = self._build(account_id, config)
        self._seen[account_id] = (time.monotonic() + REFRESH_SECONDS, fingerprint)
        return self._clients.get(account_id)

    async def for_webhook(self, account_id: str) -> C:
        """The client an incoming webhook is for; a JSON 404 when the account has none."""
        try:
            client = await self.get(account_id)
        except SettingsError as exc:
            log_event(
                log,
                "channel.account_misconfigured",
                logging.ERROR,
                channel=self._channel,
                account=account_id,
                error=str(exc),
            )
            client = None
        if client is None:
            detail = f"no {self._channel} set-up for account {account_id!r}"
            raise web.HTTPNotFound(
                text=json.dumps({"error": "unknown_account", "detail": detail}), content_type="application/json"
            )
        return client

    async def for_send(self, account_id: str) -> C:
        """The client to send with; a ``PermanentSendError`` when the account has none."""
        try:
            client = await self.get(account_id)
        except SettingsError as exc:
            raise PermanentSendError(str(exc)) from None
        if client is None:
            raise PermanentSendError(f"no {self._channel} set-up for account {account_id}")
        return client

    async def quietly(self, account_id: str) -> C | None:
        """The client for a side task (templates, a download); ``None``, logged, when the account's
        settings are unusable."""
        try:
            return await self.get(account_id)
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


def _unopened(account: Account | None, channel: str) -> list[str]:
    """Why the account's secrets of ``channel`` did not open (moved, altered, stored in clear)."""
    problems = (account.sealing_problems or {}) if account else {}
    return [why for field, why in sorted(problems.items()) if field.startswith(f"{channel}.")]
