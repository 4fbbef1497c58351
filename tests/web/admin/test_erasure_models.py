"""Erasure and the NLU models: versions trained on a customer's learned messages are retired, the
bot falls back and retrains, a retired version cannot come back, training that races an erasure
retires its own version, versions of earlier releases are covered, and one account cannot file
examples under another account's messages. A retraining is leased: one whose process died is taken
again, by any router process; an activation racing the retirement does not leave a retired version
active."""

from __future__ import annotations

import asyncio
import threading
from datetime import timedelta

import pytest
from aiohttp.test_utils import TestClient
from pymongo import monitoring

from bot.keys import STORE
from bot.nlu.trainer import _retire_if_erased
from bot.nlu.training import TrainingError
from bot.services.accounts import create_account
from bot.services.agents import add_agent
from bot.services.contacts import erase_contact, find_contact
from bot.web.api.kit import issue_token
from conversations.agent_models import Role
from conversations.models import epoch_ms, utcnow
from conversations.nlu_retirement import RETRAIN_ATTEMPTS
from conversations.repositories import Repositories
from tests.conftest import raw_database_of
from tests.router.test_inbound import wait_for
from tests.web.admin.test_intents import PASSWORD, customer_says
from tests.web.console.test_console import console_csrf, log_in


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
    assert (
        await client.post(f"/api/nlu/review/{message_id}", json={"intent": "delivery"}, headers=headers)
    ).status == 200
    version = await _train(client, headers)
    listed = await (await client.get("/api/nlu/models", headers=headers)).json()
    assert listed["models"][0]["learned_examples"] == 1 and "learned_from" not in listed["models"][0]

    await add_agent(store, "default", "ada", name="Ada", role=Role.ADMIN, password=PASSWORD)
    await log_in(client, "ada", PASSWORD)
    scope = await find_contact(store, "default", "webchat:visitor-1")
    csrf = await console_csrf(client, f"/admin/contacts?q={scope.contact_id}")
    erased = await client.post(
        f"/admin/contacts/{scope.contact_id}/erase", data={"csrf_token": csrf, "confirm": scope.contact_id}
    )
    page = await erased.text()
    assert "1 NLU model version trained on their messages retired" in page
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
        await _retire_if_erased(store, "default", "v-late", [message_id])
    for version in ("v-racing", "v-late"):
        assert (await store.nlu.get_nlu_model(version) or {}).get("retired_at")
    assert not await store.nlu.activate_nlu_model("default", "v-late", "test", utcnow())


async def test_versions_of_earlier_releases_are_retired_too(training_client: TestClient) -> None:
    """A version stored before versions recorded their sources: every example with a message id
    older than the version counts."""
    store = training_client.server.app[STORE]
    message_id = await customer_says(training_client, "parcel for Zvejniekciems never came")
    await store.training.insert_nlu_examples(
        "default",
        [
            {
                "text": "parcel for Zvejniekciems never came",
                "intent": "delivery",
                "source": "learned",
                "message_id": message_id,
            }
        ],
        utcnow(),
    )
    raw = raw_database_of(store)  # a version as an earlier release stored it: no learned_from
    [example] = await store.training.nlu_examples_of("default")
    await raw.nlu_models.insert_one(
        {"_id": "v-old", "account_id": "default", "created_at": example["created_at"] + 1, "chunks": 0, "size": 0}
    )
    await store.nlu.activate_nlu_model("default", "v-old", "test", utcnow())
    await store.ensure_indexes()  # what every start-up does
    assert (await raw.nlu_models.find_one({"_id": "v-old"}) or {})["learned_from"] == [message_id]
    result = await erase_contact(store, await find_contact(store, "default", "webchat:visitor-1"), "cli")
    assert result.models.retired == ("v-old",) and result.models.replaced == "v-old" and result.models.active is None
    assert await store.nlu.active_nlu_version("default") is None


async def test_a_training_whose_examples_messages_are_gone_once_it_is_stored_retires_its_version(
    training_client: TestClient,
) -> None:
    """An erasure that finishes after the training read the examples but before it looked at their
    messages: the version, stored after the erasure looked for versions to retire, retires itself.
    The erasure's deletion of the messages is done as it does it; the training read the examples."""
    client, store = training_client, training_client.server.app[STORE]
    headers = await _token(client)
    message_id = await customer_says(client, "parcel for Zvejniekciems never came")
    assert (
        await client.post(f"/api/nlu/review/{message_id}", json={"intent": "delivery"}, headers=headers)
    ).status == 200
    await raw_database_of(store).messages.delete_one({"_id": message_id})  # an erasure half done
    started = await client.post("/api/nlu/train", json={"activate": True}, headers=headers)
    url = (await started.json())["url"]
    async with asyncio.timeout(60):
        while (job := await (await client.get(url, headers=headers)).json())["state"] == "running":
            await asyncio.sleep(0.05)
    assert job["state"] == "failed" and "customer messages it learned from were erased" in job["error"], job
    [version] = [m for m in await store.nlu.nlu_models("default") if m.get("learned_examples")]
    assert version.get("retired_at") and await store.nlu.active_nlu_version("default") != version["_id"]


async def test_a_version_retired_while_it_is_activated_does_not_stay_active(training_client: TestClient) -> None:
    """Activation checks "not retired", then switches; an erasure retiring the version between the
    two (made to happen there: it runs in full once the check is answered) must not leave it
    active with its model deleted."""
    store = training_client.server.app[STORE]
    message_id = await customer_says(training_client, "parcel for Zvejniekciems never came")
    await store.nlu.save_nlu_model("default", "v-clean", b"clean", {"learned_from": []}, utcnow())
    await store.nlu.save_nlu_model("default", "v-taught", b"taught", {"learned_from": [message_id]}, utcnow())
    scope = await find_contact(store, "default", "webchat:visitor-1")

    def erase_now() -> None:  # on a thread of its own, with its own client: the activation waits meanwhile
        async def erase() -> None:
            own = Repositories.connect(store.client.uri or "", store.client.database_name)
            try:
                await erase_contact(own, scope, "cli")
            finally:
                await own.close()

        asyncio.run(erase())

    class EraseAfterTheCheck(monitoring.CommandListener):
        done = False

        def started(self, event: monitoring.CommandStartedEvent) -> None: ...
        def failed(self, event: monitoring.CommandFailedEvent) -> None: ...

        def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
            if event.command_name == "aggregate" and not self.done:  # count_documents: "not retired"
                self.done = True
                worker = threading.Thread(target=erase_now)
                worker.start()
                worker.join()

    racing = Repositories.connect(store.client.uri or "", store.client.database_name, listeners=[EraseAfterTheCheck()])
    try:
        activated = await racing.nlu.activate_nlu_model("default", "v-taught", "admin", utcnow())
    finally:
        await racing.close()
    assert (await store.nlu.get_nlu_model("v-taught") or {}).get("retired_at")
    assert not activated and await store.nlu.active_nlu_version("default") == "v-clean"


async def test_a_retraining_left_running_by_a_process_that_died_is_taken_again(training_client: TestClient) -> None:
    """The router that took the retraining died mid-training: its job stays "running" with a
    lease that runs out. Any router process takes it then, for an account it never served too,
    trains and activates the result."""
    store = training_client.server.app[STORE]
    await create_account(store, "rival", "Rival", "rival-admin", password=PASSWORD)
    now = epoch_ms(utcnow())
    for job_id, account in (("job-crashed", "default"), ("job-other-account", "rival")):
        await raw_database_of(store).nlu_jobs.insert_one(
            {  # as a router that died left it
                "_id": job_id,
                "account_id": account,
                "kind": "retrain",
                "state": "running",
                "stage": "training",
                "done": 3,
                "total": 9,
                "by": "era_test",
                "attempts": 1,
                "owner": "nlu-dead",
                "lease_until": now - 1,
                "started_at": now - 120_000,
                "updated_at": now - 60_000,
            }
        )

    async def retrained() -> bool:
        jobs = [await store.nlu.get_nlu_job(job_id) for job_id in ("job-crashed", "job-other-account")]
        return [(job or {}).get("state") for job in jobs] == ["done", "done"]

    await wait_for(retrained, timeout=60)
    for job_id, account in (("job-crashed", "default"), ("job-other-account", "rival")):
        job = await store.nlu.get_nlu_job(job_id)
        assert job is not None and job["attempts"] == 2 and job["owner"] != "nlu-dead"
        assert await store.nlu.active_nlu_version(account) == job["version"]


async def test_a_retraining_that_kept_killing_its_process_is_given_up(store: Repositories) -> None:
    now = utcnow()
    await store.nlu.queue_nlu_retrain("default", "job-poison", "era_test", now)
    for attempt in range(RETRAIN_ATTEMPTS):
        job = await store.nlu.claim_nlu_retrain(f"nlu-{attempt}", now + timedelta(minutes=2 * attempt))
        assert job is not None and job["_id"] == "job-poison" and job["attempts"] == attempt + 1
        assert await store.nlu.claim_nlu_retrain("nlu-other", now + timedelta(minutes=2 * attempt)) is None  # leased
    assert await store.nlu.claim_nlu_retrain("nlu-last", now + timedelta(minutes=2 * RETRAIN_ATTEMPTS)) is None
    job = await store.nlu.get_nlu_job("job-poison")
    assert job is not None and job["state"] == "failed" and "given up" in job["error"]
