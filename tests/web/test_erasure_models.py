"""Erasure and the NLU models: versions trained on a customer's learned messages are retired, the
bot falls back and retrains, a retired version cannot come back, training that races an erasure
retires its own version, versions of earlier releases are covered, and one account cannot file
examples under another account's messages."""

from __future__ import annotations

import asyncio
import pytest
from aiohttp.test_utils import TestClient

from bot.keys import STORE
from bot.nlu.trainer import _retire_if_erased
from bot.nlu.training import TrainingError
from bot.privacy import erase_contact, find_contact
from bot.tenants import create_account
from bot.web.apikit import issue_token
from bot.web.auth import add_agent
from conversations.agent_models import Role
from conversations.models import utcnow
from tests.conftest import raw_database_of
from tests.router.test_inbound import wait_for
from tests.web.test_console import console_csrf, log_in
from tests.web.test_intents import PASSWORD, customer_says


async def _token(client: TestClient, account: str = "default") -> dict[str, str]:
    token = await issue_token(client.server.app[STORE], account, "tests", ["read", "write"], "test")
    return {"Authorization": f"Bearer {token}"}


async def _train(client: TestClient, headers: dict[str, str], activate: bool = True) -> str:
    started = await client.post("/api/nlu/train", json={"activate": activate}, headers=headers)
    assert started.status == 202, await started.text()
    url = (await started.json())["url"]
    async with asyncio.timeout(60):
        while (job := await (await client.get(url, headers=headers)).json())["state"] == "running":
            await asyncio.sleep(0.05)
    assert job["state"] == "done", job
    return str(job["version"])


async def test_an_account_cannot_file_examples_under_another_accounts_message(training_client: TestClient) -> None:
    client, store = training_client, training_client.server.app[STORE]
    await create_account(store, "rival", "Rival", "rival-admin", password=PASSWORD)
    theirs = await customer_says(client, "my card number is 4111 at Ligatnes street")
    rival = await _token(client, "rival")
    sneaky = {"examples": [{"text": "mine now", "intent": "greet", "message_id": theirs}]}
    refused = await client.post("/api/nlu/examples", json=sneaky, headers=rival)
    body = await refused.json()
    assert refused.status == 400 and "is not a customer message of this account" in body["detail"], body
    for account in ("default", "rival"):
        assert [e for e in await store.training.nlu_examples_of(account) if e.get("message_id") == theirs] == []
    assert (await client.post(f"/api/nlu/review/{theirs}", json={"intent": "greet"}, headers=rival)).status == 404

    own = await client.post("/api/nlu/examples", json=sneaky, headers=await _token(client))
    assert own.status == 201 and (await own.json())["added"] == 1  # the account's own message: fine


async def test_erasing_a_learned_customer_retires_the_active_model_and_the_bot_retrains(
    training_client: TestClient,
) -> None:
    """No clean version to fall back on: conversations go to people until the retraining is active."""
    client, store = training_client, training_client.server.app[STORE]
    headers = await _token(client)
    message_id = await customer_says(client, "parcel for Zvejniekciems never came")
    assert (await client.post(f"/api/nlu/review/{message_id}", json={"intent": "delivery"}, headers=headers)).status == 200
    version = await _train(client, headers)
    listed = await (await client.get("/api/nlu/models", headers=headers)).json()
    assert listed["models"][0]["learned_examples"] == 1 and "learned_from" not in listed["models"][0]

    await add_agent(store, "default", "ada", name="Ada", role=Role.ADMIN, password=PASSWORD)
    await log_in(client, "ada", PASSWORD)
    scope = await find_contact(store, "default", "webchat:visitor-1")
    csrf = await console_csrf(client, f"/admin/contacts?q={scope.contact_id}")
    erased = await client.post(f"/admin/contacts/{scope.contact_id}/erase",
                               data={"csrf_token": csrf, "confirm": scope.contact_id})
    page = await erased.text()
    assert "1 NLU model version(s) trained on their messages retired" in page
    assert "the bot hands conversations to people until a new one is trained" in page

    async def retrained() -> bool:
        return (await store.nlu.active_nlu_version("default")) not in (None, version)

    await wait_for(retrained, timeout=60)
    retired = await store.nlu.get_nlu_model(version)
    assert retired is not None and retired["retired_by"].startswith("era_") and retired["was_active"]
    jobs = [job for job in await store.nlu.recent_nlu_jobs("default") if job.get("by") == retired["retired_by"]]
    assert [job["state"] for job in jobs] in (["running"], ["done"])

    again = await client.post(f"/api/nlu/models/{version}/activate", headers=headers)
    assert again.status == 409 and "retired" in (await again.json())["detail"]
    train_page = await (await client.get("/admin/intents/train")).text()
    assert f'id="version-{version}"' in train_page and "retired" in train_page
    csrf = await console_csrf(client, "/admin/intents/train")
    refused = await client.post(f"/admin/intents/models/{version}/activate", data={"csrf_token": csrf})
    assert refused.status == 409 and "was trained on erased data" in await refused.text()


async def test_a_version_whose_messages_were_erased_while_it_trained_is_retired(training_client: TestClient) -> None:
    store = training_client.server.app[STORE]
    message_id = await customer_says(training_client, "parcel for Zvejniekciems never came")
    await store.nlu.save_nlu_model("default", "v-racing", b"blob", {"learned_from": [message_id]}, utcnow())
    await erase_contact(store, await find_contact(store, "default", "webchat:visitor-1"), "cli")
    await store.nlu.save_nlu_model("default", "v-late", b"blob", {"learned_from": [message_id]}, utcnow())
    with pytest.raises(TrainingError, match="erased while it trained"):
        await _retire_if_erased(store, "default", "v-late", {message_id})
    for version in ("v-racing", "v-late"):
        assert (await store.nlu.get_nlu_model(version) or {}).get("retired_at")
    assert not await store.nlu.activate_nlu_model("default", "v-late", "test", utcnow())


async def test_versions_of_earlier_releases_are_retired_too(training_client: TestClient) -> None:
    """A version stored before versions recorded their sources: every example with a message id
    older than the version counts."""
    store = training_client.server.app[STORE]
    message_id = await customer_says(training_client, "parcel for Zvejniekciems never came")
    await store.training.insert_nlu_examples("default", [{"text": "parcel for Zvejniekciems never came", "intent": "delivery",
                                                 "source": "learned", "message_id": message_id}], utcnow())
    raw = raw_database_of(store)  # a version as an earlier release stored it: no learned_from
    [example] = await store.training.nlu_examples_of("default")
    await raw.nlu_models.insert_one({"_id": "v-old", "account_id": "default", "created_at": example["created_at"] + 1,
                                     "chunks": 0, "size": 0})
    await store.nlu.activate_nlu_model("default", "v-old", "test", utcnow())
    await store.ensure_indexes()  # what every start-up does
    assert (await raw.nlu_models.find_one({"_id": "v-old"}) or {})["learned_from"] == [message_id]
    result = await erase_contact(store, await find_contact(store, "default", "webchat:visitor-1"), "cli")
    assert result.models.retired == ("v-old",) and result.models.replaced == "v-old" and result.models.active is None
    assert await store.nlu.active_nlu_version("default") is None
