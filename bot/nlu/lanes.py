"""Embedding a parse's text off the event loop, in two lanes, within a time budget.

The C engine releases the GIL, so embeddings run on threads: texts that arrive while the engine
works are embedded together in its next call (several texts per call cost a fraction each). A
text's cost grows with its tokens, so texts of more than ``LONG_CHARS`` characters or
``LONG_TOKENS`` tokens (already cut to the NLU's bound, ``bot.nlu.prefix``) go one at a time
through a lane of their own, on a second thread: an ordinary customer's text never waits behind a
long one (nor shares an engine call with one: a batch costs what its longest text costs), and long
ones wait only for each other (and run at the lowest CPU priority, so they do not slow the rest of
the router down either).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from bot.nlu.embedder import QueryEmbeddings, single_engine_thread
from bot.nlu.prefix import LONG_CHARS, LONG_TOKENS
from bot.nlu.remote import NluOverBudget
from conversations.batching import Batcher


def _yielding_engine_thread() -> None:
    """The long lane's thread: one OpenMP thread, and the lowest CPU priority (Linux applies a
    thread's nice value to that thread alone), so the event loop, the store and the short lane
    get the cores first and long texts use what is left (within ``nlu.parse_budget``)."""
    single_engine_thread()
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)


class EmbeddingLanes:
    """The short lane (batched) and the long lane (one text at a time), one engine thread each."""

    def __init__(self, embedder: Callable[[], QueryEmbeddings]) -> None:
        self._embedder = embedder
        self._short_thread = ThreadPoolExecutor(1, thread_name_prefix="nlu-parse", initializer=single_engine_thread)
        self._long_thread = ThreadPoolExecutor(
            1, thread_name_prefix="nlu-parse-long", initializer=_yielding_engine_thread
        )
        self.short: Batcher[str, None] = Batcher(self._embed_short, max_size=32)
        self.long: Batcher[str, None] = Batcher(self._embed_long, max_size=1)

    async def embed(self, text: str, budget: float) -> None:
        """Put ``text``'s vector into the query LRU; ``NluOverBudget`` after ``budget`` seconds
        (the engine finishes the text meanwhile: its vector is at hand if the text comes again)."""
        lane = self.long if self.is_long(text) else self.short
        try:
            async with asyncio.timeout(budget):
                await lane.submit(text)
        except TimeoutError as exc:
            raise NluOverBudget(f"no embedding within {budget} s") from exc

    def is_long(self, text: str) -> bool:
        """Whether ``text`` goes to the long lane: over ``LONG_CHARS`` characters, or over
        ``LONG_TOKENS`` tokens of the engine's tokenizer (when the embedder has one)."""
        if len(text) > LONG_CHARS:
            return True
        count = getattr(self._embedder().inner, "token_count", None)
        return count is not None and int(count(text)) > LONG_TOKENS

    async def _embed(self, texts: Sequence[str], thread: ThreadPoolExecutor) -> list[None]:
        embedder = self._embedder()
        await asyncio.get_running_loop().run_in_executor(thread, embedder.embed, list(dict.fromkeys(texts)))
        return [None] * len(texts)

    async def _embed_short(self, texts: Sequence[str]) -> list[None]:
        return await self._embed(texts, self._short_thread)

    async def _embed_long(self, texts: Sequence[str]) -> list[None]:
        return await self._embed(texts, self._long_thread)

    def close(self) -> None:
        self._short_thread.shutdown(wait=False, cancel_futures=True)
        self._long_thread.shutdown(wait=False, cancel_futures=True)
