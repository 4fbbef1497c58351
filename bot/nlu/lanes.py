"""Embedding a parse's text off the event loop, in two lanes, within a time budget.

The C engine releases the GIL, so embeddings run on threads: texts that arrive while the engine
works are embedded together in its next call (several texts per call cost a fraction each). A
text's cost grows with its tokens, so texts of more than ``LONG_CHARS`` characters or
``LONG_TOKENS`` tokens (already cut to the NLU's bound, ``bot.nlu.prefix``) go one at a time
through a lane of their own, on a second thread: an ordinary customer's text never waits behind a
long one (nor shares an engine call with one: a batch costs what its longest text costs), and long
ones wait only for each other (and run at the lowest CPU priority, so they do not slow the rest of
the router down either). A text of more than ``LONG_CHARS`` characters is also measured there
(``read_long``): finding the prefix the NLU reads takes a dozen tokenizer calls, work that grows
with the text and that an ordinary customer's answer need not share the cores with.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from bot.nlu.embedder import QueryEmbeddings, single_engine_thread
from bot.nlu.prefix import LONG_CHARS, LONG_TOKENS, nlu_prefix
from bot.nlu.remote import NluOverBudget
from conversations.batching import Batcher

T = TypeVar("T")

SHORT_BATCH = 32  # texts the short lane embeds in one engine call at most


def _yielding_engine_thread() -> None:
    """The long lane's thread: one OpenMP thread, and the lowest CPU priority, so the event loop,
    the store and the short lane get the cores first and long texts use what is left (within
    ``nlu.parse_budget``). Linux applies both to this thread alone: ``SCHED_IDLE``, which any
    other thread waking on its core preempts at once (a thread of nice 19 may keep the core for
    the rest of its time slice first), and nice 19 where that policy is refused."""
    single_engine_thread()
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
    with contextlib.suppress(OSError, AttributeError):
        os.sched_setscheduler(threading.get_native_id(), os.SCHED_IDLE, os.sched_param(0))


def _read(embedder: QueryEmbeddings, text: str, max_tokens: int | None) -> str:
    """``text``'s prefix of ``max_tokens`` tokens (``text`` itself without a bound), embedded."""
    count = getattr(embedder.inner, "token_count", None)
    prefix = text if max_tokens is None else nlu_prefix(text, max_tokens, count)
    embedder.embed([prefix])
    return prefix


class EmbeddingLanes:
    """The short lane (batched) and the long lane (one text at a time), one engine thread each."""

    def __init__(self, embedder: Callable[[], QueryEmbeddings]) -> None:
        self._embedder = embedder
        self._short_thread = ThreadPoolExecutor(1, thread_name_prefix="nlu-parse", initializer=single_engine_thread)
        self._long_thread = ThreadPoolExecutor(
            1, thread_name_prefix="nlu-parse-long", initializer=_yielding_engine_thread
        )
        self.short: Batcher[str, None] = Batcher(self._embed_short, max_size=SHORT_BATCH)
        # (the text, the tokens of its prefix, or None for a text that is the prefix already)
        self.long: Batcher[tuple[str, int | None], str] = Batcher(self._embed_long, max_size=1)

    async def embed(self, text: str, budget: float) -> None:
        """Put ``text``'s vector into the query LRU; ``NluOverBudget`` after ``budget`` seconds
        (the engine finishes the text meanwhile: its vector is at hand if the text comes again)."""
        if self.is_long(text):
            await self._within(self.long.submit((text, None)), budget)
        else:
            await self._within(self.short.submit(text), budget)

    async def read_long(self, text: str, max_tokens: int, budget: float) -> str:
        """The prefix of ``text`` the NLU reads (``max_tokens`` tokens), found on the long lane's
        thread, and its vector put into the query LRU there; ``NluOverBudget`` as ``embed``."""
        return await self._within(self.long.submit((text, max_tokens)), budget)

    @staticmethod
    async def _within(work: Awaitable[T], budget: float) -> T:
        try:
            async with asyncio.timeout(budget):
                return await work
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

    async def _embed_long(self, texts: Sequence[tuple[str, int | None]]) -> list[str]:
        embedder = self._embedder()
        loop = asyncio.get_running_loop()
        return [await loop.run_in_executor(self._long_thread, _read, embedder, *text) for text in texts]

    def close(self) -> None:
        self._short_thread.shutdown(wait=False, cancel_futures=True)
        self._long_thread.shutdown(wait=False, cancel_futures=True)
