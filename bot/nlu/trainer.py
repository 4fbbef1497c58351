"""Training a model for an account and storing it as a new version.

The data is the account's training set (``training_set.py``: the files of ``nlu.data`` and the
examples added through the API, or the store's copy once admins edited it); every version carries
cross-validated figures of that data (``crossval.py``) and the customer messages its examples were
learned from (``learned_from``: erasing one of them retires the version, see
``conversations/nlu_retirement.py``). Embeddings already computed by any router process come from the store's cache, and the new ones
go back to it. The CPU work runs in an executor thread, never on the event loop, and reports
progress through a callback (the CLI prints it, the API keeps it on the training job).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import secrets
import time
from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

import numpy as np

from bot.nlu.crossval import cross_validate
from bot.nlu.data import Example, TrainingData
from bot.nlu.embedder import Embedder, EmbeddingCache, Progress, text_key
from bot.nlu.model import NluModel
from bot.nlu.training import TrainingError, TrainOptions, train
from bot.nlu.training_set import TrainingSet
from conversations.models import utcnow
from conversations.repositories import Repositories
from conversations.training import BOT_PARTS

log = logging.getLogger("omnirouter.nlu.trainer")


@dataclass(frozen=True)
class TrainRequest:
    account_id: str
    paths: Sequence[str]
    options: TrainOptions
    activate: bool = True
    by: str = "system"


def new_version() -> str:
    """A model version id that sorts by time: ``20261125-154801-ab12``."""
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + secrets.token_hex(2)


async def training_data(store: Repositories, account_id: str, paths: Sequence[str]) -> TrainingData:
    """What the account trains on: the files' examples plus the ones added through the API, or,
    once admins edited its data, the store's copy alone (``NluFormatError`` on a bad file)."""
    return await TrainingSet(store, account_id, paths).data()


async def train_version(
    store: Repositories,
    request: TrainRequest,
    embedder: Embedder | None,
    executor: Executor | None = None,
    progress: Progress | None = None,
) -> tuple[str, NluModel]:
    """Train, store as a new version, activate if asked; returns (version, model)."""
    loop = asyncio.get_running_loop()
    data, sources = await TrainingSet(store, request.account_id, request.paths).data_and_sources()
    cache = EmbeddingCache()
    if embedder is not None and request.options.semantic:
        await _warm_cache(store, cache, embedder, data.examples)
    metrics = await loop.run_in_executor(
        executor, functools.partial(_metrics, data, request.options, progress, embedder, cache)
    )
    model = await loop.run_in_executor(
        executor, functools.partial(train, data, embedder, cache, None, request.options, progress)
    )
    added = cache.take_added()
    if added:
        await store.nlu.save_nlu_embeddings({key: vector.astype(np.float32).tobytes() for key, vector in added.items()})
    version = new_version()
    model.meta["version"] = version
    blob = await loop.run_in_executor(executor, model.to_bytes)
    info = _info(model, request, metrics, sources)
    draft = await store.training.bot_draft(request.account_id)
    if draft is not None:  # the answers and forms edited in the console travel with the model
        info["bot"] = {part: str(draft.get(part) or "") for part in BOT_PARTS}
    await store.nlu.save_nlu_model(request.account_id, version, blob, info, utcnow())
    await _retire_if_erased(store, request.account_id, version, sources)
    if request.activate and not await store.nlu.activate_nlu_model(request.account_id, version, request.by, utcnow()):
        raise TrainingError(
            f"version {version} was retired as it was stored: an erasure took some of its training data; train again"
        )
    await store.audit.record_audit(
        request.account_id,
        request.by,
        "nlu.train",
        version,
        utcnow(),
        activated=request.activate,
        intents=len(model.classes),
    )
    return version, model


def _info(
    model: NluModel, request: TrainRequest, metrics: dict[str, object] | None, sources: Sequence[str]
) -> dict[str, Any]:
    """What the version document says besides the blob."""
    return {
        "created_by": request.by,
        "intents": len(model.classes),
        "languages": model.languages,
        "semantic": model.semantic,
        **{k: model.meta[k] for k in ("examples", "calibration", "train_seconds") if k in model.meta},
        "metrics": metrics,
        "learned_examples": len(sources),
        "learned_from": list(sources),
    }


async def _retire_if_erased(store: Repositories, account_id: str, version: str, sources: Sequence[str]) -> None:
    """A version trained on messages that are gone once it is stored is retired at once: an
    erasure deleted them at any time after the training read their examples, and looked for
    versions to retire before this one was stored."""
    gone = set(sources) - await store.messages.existing_messages(account_id, list(sources))
    if gone:
        await store.nlu.retire_nlu_models(account_id, sorted(gone), f"training:{version}", utcnow())
        raise TrainingError(
            f"version {version} was retired: customer messages it learned from were erased "
            "while it trained; train again"
        )


def _metrics(
    data: TrainingData,
    options: TrainOptions,
    progress: Progress | None,
    embedder: Embedder | None,
    cache: EmbeddingCache,
) -> dict[str, object] | None:
    try:
        return cross_validate(data, options, progress, embedder=embedder, cache=cache)
    except TrainingError:
        return None


async def _warm_cache(
    store: Repositories, cache: EmbeddingCache, embedder: Embedder, examples: Sequence[Example]
) -> None:
    keys = list(dict.fromkeys(text_key(embedder.name, e.text) for e in examples))
    stored = await store.nlu.nlu_embeddings(keys)
    cache.put_many({k: np.frombuffer(v, dtype=np.float32) for k, v in stored.items()}, new=False)
