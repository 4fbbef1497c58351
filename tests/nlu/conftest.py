"""A model trained once per test session on the starter data (real engine, semantic tier on),
and helpers to install it as an account's active model."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.nlu.embedder import default_embedder
from bot.nlu.formats import load_paths
from bot.nlu.model import NluModel
from bot.nlu.training import train
from conversations.models import utcnow
from conversations.repositories import Repositories

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def starter_blob() -> bytes:
    model = train(load_paths([ROOT / "config" / "nlu"]), default_embedder())
    model.meta["version"] = "starter-1"
    return model.to_bytes()


@pytest.fixture(scope="session")
def starter_model(starter_blob: bytes) -> NluModel:
    return NluModel.from_bytes(starter_blob)


async def install(store: Repositories, blob: bytes, version: str = "starter-1", account: str = "default") -> None:
    """Store ``blob`` as ``version`` of ``account`` and activate it."""
    await store.nlu.save_nlu_model(
        account, version, blob, {"intents": 0, "examples": 0, "created_by": "test"}, utcnow()
    )
    assert await store.nlu.activate_nlu_model(account, version, "test", utcnow())
