"""One provider client per account.

The account the install serves first (``account.id``) takes its channel settings from the
settings file; any other account takes them from its document in the store
(``accounts.<id>.channels.<channel>``), read on first use and kept for the life of the process.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from aiohttp import web

from bot.handlers.base import PermanentSendError
from bot.logs import log_event
from bot.settings import SettingsError

if TYPE_CHECKING:
    from conversations.store import Store

log = logging.getLogger("omnirouter.handlers")

C = TypeVar("C")


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
        self._clients: dict[str, C] = {}
        self._store: Store | None = None
        self._lock = asyncio.Lock()
        if default_config is not None:
            self._clients[default_account] = build(default_account, default_config)

    def attach(self, store: Store) -> None:
        self._store = store

    def loaded(self) -> dict[str, C]:
        return dict(self._clients)

    async def get(self, account_id: str) -> C | None:
        """The account's client, or ``None`` if the account has no such channel configured."""
        client = self._clients.get(account_id)
        if client is not None or self._store is None:
            return client
        async with self._lock:
            if account_id in self._clients:
                return self._clients[account_id]
            account = await self._store.get_account(account_id)
            config = account.channels.get(self._channel) if account else None
            if not isinstance(config, Mapping):
                return None
            self._clients[account_id] = client = self._build(account_id, config)
            return client

    async def for_webhook(self, account_id: str) -> C:
        """The client an incoming webhook is for; a JSON 404 when the account has none."""
        try:
            client = await self.get(account_id)
        except SettingsError as exc:
            log_event(log, "channel.account_misconfigured", logging.ERROR, channel=self._channel,
                      account=account_id, error=str(exc))
            client = None
        if client is None:
            detail = f"no {self._channel} set-up for account {account_id!r}"
            raise web.HTTPNotFound(text=json.dumps({"error": "unknown_account", "detail": detail}),
                                   content_type="application/json")
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

    async def close_all(self, close: Callable[[C], Awaitable[None]]) -> None:
        for client in self._clients.values():
            await close(client)
