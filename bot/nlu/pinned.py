"""The model versions inboxes are pinned to (an inbox's routing ``model``: one of its account's
trained versions answers it instead of the account's active one).

Each router process keeps the pinned versions it has parsed for in memory beside the active
models, one per (account, version): a version's trained model never changes, so a pin is loaded
once, and shares the active model's memory when both are the same trained model (a version of
edited answers). The watcher's every look (``nlu.reload_interval``) asks the store whether each
pinned version is still usable (the account's, not retired by an erasure, not deleted): one that
is not stops answering, and the account's active model answers its inbox instead, in every process
within that interval. A pin no message asked for lately is let go, so its memory is freed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from bot.logs import log_event
from bot.tasks import stop_tasks
from conversations.repositories import Repositories

log = logging.getLogger("omnirouter.nlu")
IDLE_SECONDS = 600.0  # a pin no parse used this long is let go (loaded again when asked)
Loaded = TypeVar("Loaded")


@dataclass
class _Pin(Generic[Loaded]):
    loaded: Loaded | None  # None: the version is not usable (the active model answers instead)
    used: float


class PinnedModels(Generic[Loaded]):
    """The loaded pinned versions of one process; ``load(account, version)`` reads one from the
    store (``None`` when its model is missing)."""

    def __init__(self, store: Repositories, load: Callable[[str, str], Awaitable[Loaded | None]]) -> None:
        self._store = store
        self._load = load
        self._pins: dict[tuple[str, str], _Pin[Loaded]] = {}
        # one load per version at a time; a version's load never waits for another's
        self._loading: dict[tuple[str, str], asyncio.Task[_Pin[Loaded]]] = {}

    async def get(self, account_id: str, version: str) -> Loaded | None:
        """The pinned ``version`` of the account, loaded; ``None`` when it is not usable."""
        key = (account_id, version)
        pin = self._pins.get(key)
        if pin is None:
            loading = self._loading.get(key)
            if loading is None:
                loading = self._loading[key] = asyncio.create_task(self._pin(account_id, version))
                loading.add_done_callback(lambda _: self._loading.pop(key, None))
            pin = await asyncio.shield(loading)  # a waiter cancelled leaves the load to the others
        pin.used = time.monotonic()
        return pin.loaded

    async def close(self) -> None:
        """Stop the loads in flight: a load outlives the parse that asked for it (others may
        wait for it too), so the process's end must stop it, not the parse's."""
        await stop_tasks(list(self._loading.values()))

    async def _pin(self, account_id: str, version: str) -> _Pin[Loaded]:
        pin = self._pins[(account_id, version)] = _Pin(await self._fetch(account_id, version), time.monotonic())
        return pin

    def peek(self, account_id: str, version: str) -> Loaded | None:
        """The pinned version if it is loaded and usable now (never reads the store)."""
        pin = self._pins.get((account_id, version))
        return pin.loaded if pin is not None else None

    async def _fetch(self, account_id: str, version: str) -> Loaded | None:
        if not await self._store.nlu.usable_nlu_version(account_id, version):
            log_event(log, "nlu.pinned_unavailable", logging.WARNING, account=account_id, version=version)
            return None
        loaded = await self._load(account_id, version)
        if loaded is not None:
            log_event(log, "nlu.pinned_loaded", account=account_id, version=version)
        return loaded

    async def refresh(self) -> None:
        """Let idle pins go; stop using a pinned version that is no longer usable."""
        now = time.monotonic()
        for key, pin in list(self._pins.items()):
            if now - pin.used > IDLE_SECONDS:
                del self._pins[key]
            elif pin.loaded is not None and not await self._store.nlu.usable_nlu_version(*key):
                pin.loaded = None
                log_event(log, "nlu.pinned_unavailable", logging.WARNING, account=key[0], version=key[1])
