"""Trainings take turns: one router process runs ``nlu.trainings`` at once (1 here) and the rest
wait, shown as queued; an account runs one training at a time, and a second request while its
first runs is refused with 409, in the API and the console alike."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp.test_utils import TestClient

from bot.keys import STORE
from bot.web.api.kit import issue_token
from bot.web.keys import FIRST_ADMIN
from conversations.embedded import EmbeddedMongo
from conversations.models import utcnow
from tests.conftest import make_settings
from tests.web.console.test_console import console_csrf, log_in


async def started(client: TestClient, headers: dict[str, str] | None = None) -> str:
    response = await client.post("/api/nlu/train", json={"activate": False}, headers=headers)
    assert response.status == 202, await response.text()
    return str((await response.json())["job"])


async def test_trainings_take_turns_and_an_account_runs_one_at_a_time(
    embedded: EmbeddedMongo, db_name: str, start_client: Any
) -> None:
    client = await start_client(make_settings(embedded.uri, db_name, nlu={"semantic": False, "auto_train": False}))
    store = client.server.app[STORE]
    await store.accounts.ensure_account("shop", "Shop", utcnow())
    shop = {"Authorization": f"Bearer {await issue_token(store, 'shop', 'ops', ['read', 'write'], 'test')}"}

    first = await started(client)
    second = await started(client, shop)  # another account's: accepted, and waits its turn
    again = await client.post("/api/nlu/train", json={"activate": False})
    assert again.status == 409
    refused = await again.json()
    assert refused["error"] == "training_running" and first in refused["detail"]

    seen: list[tuple[str, str, str, str]] = []
    async with asyncio.timeout(120):
        while True:
            a = await store.nlu.get_nlu_job(first)
            b = await store.nlu.get_nlu_job(second)
            assert a is not None and b is not None
            seen.append((a["state"], a["stage"], b["state"], b["stage"]))
            if b["state"] != "running":
                break
            await asyncio.sleep(0.02)
    assert seen[0][3] == "queued"  # shop's waited from the start
    # never both at work: while shop's trained, the first had finished
    assert all(a_state != "running" for a_state, _, b_state, b_stage in seen if b_stage != "queued"), seen
    assert seen[-1][0] == "done" and seen[-1][2] == "done", seen
    assert (await client.post("/api/nlu/train", json={"activate": False})).status == 202  # its turn again


async def test_the_console_follows_the_running_training_instead_of_starting_another(
    embedded: EmbeddedMongo, db_name: str, start_client: Any
) -> None:
    client = await start_client(make_settings(embedded.uri, db_name, nlu={"semantic": False, "auto_train": False}))
    running = await started(client)
    login, password = client.server.app[FIRST_ADMIN]
    assert (await log_in(client, login, password)).status == 303
    csrf = await console_csrf(client, "/admin/intents/train")
    answer = await client.post("/admin/intents/train", data={"csrf_token": csrf}, allow_redirects=False)
    assert answer.status == 303 and f"job={running}" in answer.headers["Location"]
    jobs = await client.server.app[STORE].nlu.recent_nlu_jobs("default")
    assert [job["_id"] for job in jobs] == [running]
