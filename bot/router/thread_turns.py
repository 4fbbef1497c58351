"""The bot decides the messages of one thread one at a time in a process, each on the state the
one before it wrote.

A customer often sends a few short messages at once ("hi" / "my order" / "A-10234"). Decided side
by side, each read the thread's dialogue state before the others wrote theirs: all but one lost
their versioned swap, read the state back and decided again: a read, a second decision and a
second update of the thread for each. Taking turns per thread (first come, first served), each
decision starts from the state the previous turn wrote (handed over in memory, no read) and its
swap holds. Another router process can still change the state meanwhile: the swap stays
versioned, and a lost one is read back and decided again as before.

A turn covers deciding and writing the state (the dialogue's actions included), not parsing the
text before it or sending the answer after it: the messages of a burst are decided in the order
they reach their turn, which is usually but not always the order they came in (a long text
parsed on the slow lane, a new conversation's greeting sent first), and their answers are sent
side by side as before. A turn waits for the ones before it: a thread whose decisions call a slow
action takes that long per message (each message's dispatch lease is renewed meanwhile). The
newest state is kept only while a thread has a decision waiting or running, so nothing of a
conversation stays in memory after its turns are done (an erased contact's slots included).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any


class Turn:
    """One thread's turn: the state the previous turn in this process wrote (or read back after
    its swap was refused), if any."""

    __slots__ = ("_lock", "_users", "written")

    def __init__(self) -> None:
        self._lock = asyncio.Lock()  # FIFO: waiters are woken in the order they came
        self._users = 0
        self.written: Mapping[str, Any] | None = None

    def newest(self, stored: Mapping[str, Any] | None) -> dict[str, Any]:
        """``stored`` (the state read with the thread) or the one a previous turn wrote, whichever
        is at the later version."""
        stored = stored or {}
        if self.written is not None and int(self.written.get("v", 0)) > int(stored.get("v", 0)):
            return dict(self.written)
        return dict(stored)


class ThreadTurns:
    """Per-thread turns of the dispatches running in this process."""

    def __init__(self) -> None:
        self._turns: dict[str, Turn] = {}

    def __len__(self) -> int:
        """Threads with a decision waiting or running."""
        return len(self._turns)

    @asynccontextmanager
    async def turn(self, thread_id: str) -> AsyncIterator[Turn]:
        turn = self._turns.get(thread_id)
        if turn is None:
            turn = self._turns[thread_id] = Turn()
        turn._users += 1
        try:
            async with turn._lock:
                yield turn
        finally:
            turn._users -= 1
            if not turn._users:
                del self._turns[thread_id]
