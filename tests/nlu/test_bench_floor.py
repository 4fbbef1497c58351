"""``bench/floor.py``'s NLU prediction is the router's: embedded as its short lane embeds."""

from __future__ import annotations

import threading

from bench import floor
from bot.nlu.embedder import QueryEmbeddings, default_embedder, engine_threads


def test_the_floor_embeds_texts_in_batches_on_one_engine_thread(starter_blob: bytes) -> None:
    made: list[tuple[QueryEmbeddings, str, int]] = []

    def embedders() -> QueryEmbeddings:
        made.append((QueryEmbeddings(default_embedder()), threading.current_thread().name, engine_threads()))
        return made[-1][0]

    before = engine_threads()
    texts = [f"where is my order A-{n}?" for n in range(10)] + ["hi", "hi"]
    seconds = floor.nlu_seconds(starter_blob, texts, True, batch=4, passes=2, embedders=embedders)
    assert 0 < seconds < 10
    assert len(made) == 3  # the warm-up's and one a pass: each pass starts with an empty LRU
    for embedder, thread, openmp in made[1:]:
        # batches of 4: the last one's "hi" twice is embedded once
        assert (embedder.computed, embedder.calls) == (11, 3)
        assert thread.startswith("nlu-floor") and thread != threading.current_thread().name
        assert openmp == 1
    assert engine_threads() == before  # the caller's thread keeps its engine threads


def test_the_lexical_floor_embeds_nothing(starter_blob: bytes) -> None:
    made: list[QueryEmbeddings] = []

    def embedders() -> QueryEmbeddings:
        made.append(QueryEmbeddings(default_embedder()))
        return made[-1]

    assert 0 < floor.nlu_seconds(starter_blob, ["hi", "thanks"], False, passes=1, embedders=embedders) < 1
    assert made == []
