"""Intent training through the API and the console's forms: where an account's data lives (the
starter files until the first edit, the store after), examples added / edited / moved / deleted,
Rasa YAML import and export, learning from customer messages (and the personal data it creates),
cross-validated figures on every version, and the unhappy paths: bad files, unknown intents,
empty texts, another account's records, an agent at the admin pages."""

from __future__ import annotations

import asyncio
import re

import aiohttp
from aiohttp.test_utils import TestClient

from bot.keys import NLU, PIPELINE, STORE
from bot.services.accounts import create_account
from bot.services.agents import add_agent
from bot.services.contacts import erase_contact, export_contact, find_contact
from bot.web.api.kit import issue_token
from conversations.agent_models import Role
from conversations.traffic import Identity, Inbound
from conversations.training import example_id
from tests.nlu.test_versions import train_via_api
from tests.web.console.test_console import console_csrf, log_in

PASSWORD = "correct horse battery"


async def test_the_first_edit_copies_the_files_into_the_store(training_client: TestClient) -> None:
    client, store = training_client, training_client.server.app[STORE]
    intents = {i["name"]: i for i in (await (await client.get("/api/intents")).json())["intents"]}
    assert intents["greet"]["examples"] == 4 and intents["delivery"]["examples"] == 4
    assert "goodbye" in intents and intents["goodbye"]["examples"] == 0  # answered in responses.yml, no examples yet
    assert await store.training.nlu_data("default") is None  # still the files

    added = await client.post("/api/intents/greet/examples", json={"text": "good evening", "language": "en"})
    assert added.status == 201, await added.text()
    example = await added.json()
    assert example["id"] == example_id("default", "Good  Evening") and example["source"] == "api"
    assert (await store.training.nlu_data("default") or {}).get("seeded_at")
    assert len(await store.training.nlu_examples_of("default")) == 13  # the 12 of the file, copied, and the new one
    greet = await (await client.get("/api/intents/greet")).json()
    assert {e["text"] for e in greet["examples"]} == {"hello", "hi there", "good morning", "hey", "good evening"}
    assert greet["responses"]["en"] and greet["titles"]["en"] == "Hello"

    again = await client.post("/api/intents/delivery/examples", json={"text": "GOOD evening"})
    assert again.status == 409 and "greet" in (await again.json())["detail"]
    moved = await client.patch(f"/api/intents/greet/examples/{example['id']}", json={"intent": "delivery"})
    assert moved.status == 200 and (await moved.json())["intent"] == "delivery"
    edited = await client.patch(
        f"/api/intents/delivery/examples/{example['id']}", json={"text": "do you ship [Riga](city)"}
    )
    body = await edited.json()
    assert edited.status == 200 and body["text"] == "do you ship [Riga](city)" and body["id"] != example["id"]
    stored = await store.training.nlu_example("default", body["id"])
    assert stored is not None and stored["text"] == "do you ship Riga" and stored["entities"][0]["entity"] == "city"
    gone = await client.delete(f"/api/intents/delivery/examples/{body['id']}")
    assert gone.status == 200
    assert (await client.delete(f"/api/intents/delivery/examples/{body['id']}")).status == 404

    assert (await client.post("/api/intents", json={"name": "loyalty_card"})).status == 201
    assert (await client.post("/api/intents", json={"name": "loyalty_card"})).status == 409
    put = await client.put(
        "/api/intents/loyalty_card", json={"examples": [{"text": "how much"}, {"text": "price list"}]}
    )
    assert put.status == 200 and (await put.json())["examples"] == 2
    deleted = await client.delete("/api/intents/loyalty_card")
    assert (await deleted.json())["examples"] == 2 and (await client.get("/api/intents/loyalty_card")).status == 404

    job = await train_via_api(client, activate=False)  # trains on the store's copy now
    assert job["state"] == "done"
    model = await store.nlu.get_nlu_model(job["version"])
    assert model is not None and model["examples"] == 12
    metrics = model["metrics"]
    assert metrics["method"].startswith("stratified 5-fold") and metrics["examples"] == 12
    assert {row["intent"] for row in metrics["per_intent"]} == {"greet", "opening_hours", "delivery"}
    assert all(0 <= row["f1"] <= 100 for row in metrics["per_intent"])
    listed = await (await client.get("/api/nlu/models")).json()
    assert listed["models"][0]["metrics"]["accuracy"] == metrics["accuracy"]


async def test_rasa_yaml_round_trip_and_bad_files(training_client: TestClient) -> None:
    client = training_client
    exported = await client.get("/api/nlu/export")
    text = await exported.text()
    assert exported.status == 200 and "- intent: greet" in text and "    - good morning" in text

    bad = await client.post(
        "/api/nlu/import", json={"name": "faq.yml", "yaml": "nlu:\n- intent: greet\n  examples: |\n    hello\n"}
    )
    body = await bad.json()
    assert bad.status == 400 and body["error"] == "bad_file"
    assert body["detail"].startswith("faq.yml:4:") and "must start with '- '" in body["detail"]
    broken = await client.post("/api/nlu/import", json={"yaml": "nlu: [\n"})
    assert broken.status == 400 and (await broken.json())["detail"].startswith("upload.yml:")
    bad_name = await client.post(
        "/api/nlu/import", json={"name": "n.yml", "yaml": "nlu:\n- intent: two words\n  examples: |\n    - hi\n"}
    )
    assert bad_name.status == 400 and "n.yml:4: intent name" in (await bad_name.json())["detail"]
    assert await client.server.app[STORE].training.nlu_data("default") is None  # nothing imported, nothing copied

    replaced = await client.post(
        "/api/nlu/import", json={"replace": True, "yaml": text.replace("greet", "hello_intent")}
    )
    assert replaced.status == 200 and (await replaced.json()) == {"added": 12, "intents": 3}
    names = [i["name"] for i in (await (await client.get("/api/intents")).json())["intents"]]
    assert names == ["delivery", "hello_intent", "opening_hours"]
    again = await client.post("/api/nlu/import", json={"yaml": text})  # the same texts: nothing new
    assert (await again.json())["added"] == 0


async def test_bad_requests_are_refused_with_a_reason(training_client: TestClient) -> None:
    client = training_client
    for method, path, body, status in [
        ("GET", "/api/intents/no_such_intent", None, 404),
        ("POST", "/api/intents/no_such_intent/examples", {"text": "hello"}, 404),
        ("POST", "/api/intents/greet/examples", {"text": ""}, 400),
        ("POST", "/api/intents/greet/examples", {"text": "   "}, 400),
        ("POST", "/api/intents/greet/examples", {"text": "see [it](", "language": "en"}, 400),
        ("POST", "/api/intents", {"name": "has space"}, 400),
        ("PATCH", "/api/intents/greet/examples/exm_nothing", {"intent": "delivery"}, 404),
        ("PATCH", "/api/intents/greet/examples/exm_nothing", {}, 400),
        ("POST", "/api/nlu/review/msg_nothing", {"intent": "greet"}, 404),
        ("POST", "/api/nlu/try", {"text": "hello"}, 409),  # no model yet
    ]:
        response = await client.request(method, path, json=body)
        assert response.status == status, (method, path, body, await response.text())
        assert "error" in await response.json()


async def test_another_accounts_training_data_is_out_of_reach(training_client: TestClient) -> None:
    client, store = training_client, training_client.server.app[STORE]
    await create_account(store, "acme", "Acme", "acme-admin", password=PASSWORD)
    await create_account(store, "rival", "Rival", "rival-admin", password=PASSWORD)
    acme = {"Authorization": f"Bearer {await issue_token(store, 'acme', 'crm', ['read', 'write'], 'test')}"}
    rival = {"Authorization": f"Bearer {await issue_token(store, 'rival', 'crm', ['read', 'write'], 'test')}"}
    assert (await client.post("/api/intents", json={"name": "acme_secret"}, headers=acme)).status == 201
    added = await client.post("/api/intents/acme_secret/examples", json={"text": "the acme words"}, headers=acme)
    example = (await added.json())["id"]

    assert (await client.get("/api/intents/acme_secret", headers=rival)).status == 404
    assert (await client.get("/api/intents?account=acme", headers=rival)).status == 403
    for method, path, body in [
        ("PATCH", f"/api/intents/acme_secret/examples/{example}", {"text": "mine now"}),
        ("DELETE", f"/api/intents/acme_secret/examples/{example}", None),
        ("DELETE", "/api/intents/acme_secret", None),
    ]:
        assert (await client.request(method, path, json=body, headers=rival)).status == 404
    rival_names = [i["name"] for i in (await (await client.get("/api/intents", headers=rival)).json())["intents"]]
    assert "acme_secret" not in rival_names
    assert "the acme words" not in await (await client.get("/api/nlu/export", headers=rival)).text()
    assert await store.training.nlu_example("acme", example) is not None  # untouched


async def customer_says(client: TestClient, text: str, visitor: str = "visitor-1", account: str = "default") -> str:
    recorded, task = await client.server.app[PIPELINE].receive(
        Inbound(
            account_id=account,
            channel="webchat",
            external_id=f"{visitor}:{text}",
            sender=Identity("webchat", visitor),
            text=text,
        )
    )
    if task is not None:
        await task
    return str(recorded.message.id)


async def test_a_learned_example_goes_with_the_customers_data(training_client: TestClient) -> None:
    client, store = training_client, training_client.server.app[STORE]
    message_id = await customer_says(client, "my parcel never arrived at Ligatnes street 4")  # no model: queued
    other = await customer_says(client, "something else entirely", visitor="visitor-2")
    review = (await (await client.get("/api/nlu/review")).json())["messages"]
    assert {m["id"] for m in review} == {message_id, other} and review[0]["action"] == "queued"

    learned = await client.post(f"/api/nlu/review/{message_id}", json={"intent": "delivery"})
    assert learned.status == 200, await learned.text()
    assert (await learned.json())["example"]["message_id"] == message_id
    assert (await client.post(f"/api/nlu/review/{other}", json={"intent": None})).status == 200  # dismissed
    assert (await (await client.get("/api/nlu/review")).json())["messages"] == []
    assert (await client.post(f"/api/nlu/review/{message_id}", json={"intent": "greet"})).status == 409

    scope = await find_contact(store, "default", "webchat:visitor-1")
    exported = await export_contact(store, scope, "cli")
    examples = exported["data"]["nlu_examples"]
    assert [e["text"] for e in examples] == ["my parcel never arrived at Ligatnes street 4"]
    assert any(e["action"] == "nlu.learn" for e in exported["data"]["audit"])
    await erase_contact(store, scope, "cli")
    left = [
        e
        for e in await store.training.nlu_examples_of("default")
        if e.get("message_id") == message_id or "Ligatnes" in str(e.get("text"))
    ]
    assert left == []
    assert len(await store.training.nlu_examples_of("default", "delivery")) == 4  # the rest of the data stays


async def test_console_pages_refuse_agents_and_explain_bad_input(training_client: TestClient) -> None:
    client, store = training_client, training_client.server.app[STORE]
    _, _password = await add_agent(store, "default", "olga", name="Olga", password=PASSWORD)
    await log_in(client, "olga", PASSWORD)
    for path in ("/admin/intents", "/admin/intents/learn", "/admin/intents/train"):
        refused = await client.get(path)
        assert refused.status == 403, path
    csrf = await console_csrf(client)
    form = {"csrf_token": csrf, "text": "hello there"}
    assert (await client.post("/admin/intents/greet/examples", data=form)).status == 403
    await client.post("/logout", data={"csrf_token": csrf})

    await add_agent(store, "default", "ada", name="Ada", role=Role.ADMIN, password=PASSWORD)
    await log_in(client, "ada", PASSWORD)
    page = await (await client.get("/admin/intents")).text()
    assert "still trains on the starter files" in page and 'id="add-example"' in page
    csrf = await console_csrf(client, "/admin/intents")
    empty = await client.post("/admin/intents/greet/examples", data={"csrf_token": csrf, "text": "  "})
    assert empty.status == 400 and "1 to 1000 characters" in await empty.text()
    unknown = await client.post("/admin/intents/nope/examples", data={"csrf_token": csrf, "text": "hi"})
    assert unknown.status == 404 and "no intent 'nope'" in await unknown.text()

    upload = aiohttp.FormData()
    upload.add_field("csrf_token", csrf)
    upload.add_field("file", b"nlu:\n- intent: greet\n  examples: |\n    - hi\n  colour: blue\n", filename="mine.yml")
    bad = await client.post("/admin/intents/import", data=upload)
    text = await bad.text()
    assert bad.status == 400 and 'id="import-error"' in text and "mine.yml:5: unknown key &#39;colour&#39;" in text

    learn = await (await client.get("/admin/intents/learn")).text()
    assert 'id="nothing-to-learn"' in learn
    train = await (await client.get("/admin/intents/train")).text()
    assert 'id="no-models"' in train
    tried = await client.post("/admin/intents/try", data={"csrf_token": csrf, "text": "hello"})
    assert "train a version and activate it first" in await tried.text()


async def test_console_versions_and_jobs_of_another_account_are_404(training_client: TestClient) -> None:
    client, store = training_client, training_client.server.app[STORE]
    nlu = client.server.app[NLU]
    await create_account(store, "rival", "Rival", "rival-admin", password=PASSWORD)
    job = await nlu.start_job(nlu.train_request("rival", activate=False, by="test"))
    async with asyncio.timeout(60):
        while (await store.nlu.get_nlu_job(job) or {}).get("state", "running") == "running":
            await asyncio.sleep(0.05)
    version = str((await store.nlu.get_nlu_job(job) or {})["version"])
    await add_agent(store, "default", "ada", name="Ada", role=Role.ADMIN, password=PASSWORD)
    await log_in(client, "ada", PASSWORD)
    csrf = await console_csrf(client, "/admin/intents/train")
    assert (await client.get(f"/admin/intents/jobs/{job}")).status == 404
    activated = await client.post(f"/admin/intents/models/{version}/activate", data={"csrf_token": csrf})
    assert activated.status == 404 and await store.nlu.active_nlu_version("rival") is None
    assert re.search(version, await (await client.get("/admin/intents/train")).text()) is None
