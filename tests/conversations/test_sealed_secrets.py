"""The install's shared secrets against the embedded server: created once, kept sealed."""

from __future__ import annotations

import asyncio
from typing import Any

from conversations.models import utcnow
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


async def test_an_inbox_s_sealed_token_copied_into_another_inbox_does_not_open(
    store: Repositories, raw_database: Any
) -> None:
    """Secrets are sealed for their inbox: a sealed value copied at rest from one inbox to another
    (of the same account, or another's) does not open there, and says so; its own still opens."""
    store.client.use_sealer(Sealer(parse_key(TEST_SECRET_KEY)))
    now = utcnow()
    mine = await store.inboxes.create_inbox(
        "a", "telegram", "one", {"token": "1:mine", "webhook_secret": "s1"}, now, None
    )
    for account in ("a", "b"):
        other = await store.inboxes.create_inbox(
            account, "telegram", "two", {"token": "2:other", "webhook_secret": "s2"}, now, None
        )
        assert mine is not None and other is not None
        sealed = (await raw_database.inboxes.find_one({"_id": mine.id}))["config"]["token"]
        assert sealed.startswith("sealed:") and "1:mine" not in sealed
        await raw_database.inboxes.update_one({"_id": other.id}, {"$set": {"config.token": sealed}})
        copied = await store.inboxes.get_inbox(other.id)
        assert copied is not None and copied.config.get("token") != "1:mine"
        assert copied.sealing_problems and "token" in copied.sealing_problems
        own = await store.inboxes.get_inbox(mine.id)
        assert own is not None and own.config["token"] == "1:mine" and not own.sealing_problems
