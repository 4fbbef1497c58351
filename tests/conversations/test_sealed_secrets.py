"""The install's shared secrets against the embedded server: created once, kept sealed."""

from __future__ import annotations

import asyncio
from typing import Any

from conversations.repositories import Repositories
from conversations.sealing import Sealer, parse_key
from tests.conftest import TEST_SECRET_KEY


async def test_shared_secret_is_created_once_and_kept_sealed(store: Repositories, raw_database: Any) -> None:
    store.client.use_sealer(Sealer(parse_key(TEST_SECRET_KEY)))
    made = await asyncio.gather(*(store.secrets.sealed_secret("s", lambda: f"v{id(object())}") for _ in range(5)))
    values = [value for value, _ in made]
    assert len(set(values)) == 1 and [created for _, created in made].count(True) == 1
    raw = await raw_database.secrets.find_one({"_id": "s"})  # at rest
    assert raw is not None and raw["value"].startswith("sealed:v2:") and values[0] not in str(raw)
