"""Per-chat pacing: messenger APIs throttle bursts to one chat (Telegram: about one message a
second), so sends to the same chat are spaced out here rather than bounced by the provider."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Hashable

from bot.handlers.kit.protocol import RetryableSendError


class ChatPacer:
    """Spaces sends to one chat at least ``interval`` seconds apart, within this process.

    A send that would wait longer than ``max_wait`` is handed back to the outbox as a retry
    after that wait instead, so a burst to one chat never holds every sending slot.
    """

    def __init__(self, interval: float, max_wait: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._interval = interval
        self._max_wait = max_wait
        self._clock = clock
        self._next: dict[Hashable, float] = {}
        self._started: dict[Hashable, float] = {}  # when each chat's last send really started

    async def slot(self, chat: Hashable) -> None:
        """Wait for ``chat``'s next free slot (and take it)."""
        if self._interval <= 0:
            return
        now = self._clock()
        start = max(now, self._next.get(chat, now))
        wait = start - now
        if wait > self._max_wait:
            raise RetryableSendError(f"pacing sends to one chat ({self._interval:g} s apart)", retry_after=wait)
        self._next[chat] = start + self._interval
        if len(self._next) > 10_000:
            self._forget_idle(now)
        if wait > 0:
            await asyncio.sleep(wait)
            # a busy loop wakes sleepers late, the previous send's perhaps later than this one's:
            # the gap counts from when that send really started (or, once answered, ended)
            behind = self._started.get(chat, float("-inf")) + self._interval - self._clock()
            if behind > 0:
                self._next[chat] = max(self._next[chat], start + behind + self._interval)
                await asyncio.sleep(behind)
        self._started[chat] = self._clock()

    def delivered(self, chat: Hashable) -> None:
        """The send that took ``chat``'s last slot was answered: the provider had it by now, so the
        next send's gap counts from here (a send started on time can still arrive late — a new
        connection, a busy loop — and land closer than ``interval`` to the next one)."""
        if chat in self._started:
            self._started[chat] = self._clock()

    def _forget_idle(self, now: float) -> None:
        for chat in [c for c, free_at in self._next.items() if free_at < now]:
            del self._next[chat]
            self._started.pop(chat, None)
