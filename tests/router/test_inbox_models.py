"""An inbox pinned to one of its account's trained model versions (its routing's ``model``) is
answered by that version while the account's other web chats are answered by its active model; a
pinned version later retired stops answering in every router process within the NLU's refresh,
and the active model answers its inbox instead. Two real trained models: the starter one (active)
and a small second one that knows pizza orders."""

from __future__ import annotations

import shutil
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from bot.keys import NLU, PIPELINE, STORE
from bot.nlu.formats import load_paths
from bot.nlu.training import TrainOptions, train
from conversations.embedded import EmbeddedMongo
from conversations.models import utcnow
from conversations.repositories import Repositories
from tests.conftest import TEST_API_TOKEN, make_settings, raw_database_of
from tests.nlu.conftest import ROOT, install, starter_blob  # noqa: F401 (the session's starter model)
from tests.router.test_inbound import wait_for
from tests.router.test_inbox_routing import web_chat

INSTALL = {"Authorization": f"Bearer {TEST_API_TOKEN}"}
PIZZA = """\
nlu:
- intent: order_pizza
  examples: |
    - I want to order a pizza
    - can I get a large pizza
    - one margherita pizza please
    - pizza delivery order
    - order two pizzas
- intent: pizza_toppings
  examples: |
    - which toppings do you have
    - can I add extra cheese
    - do you have pineapple topping
    - what toppings are there
    - no onions on top please
"""
ORDER = "I want to order a pizza"
LEARNED_FROM = "m-erased"  # a message the pizza model learned from: erasing it retires the model


@pytest.fixture(scope="module")
def pizza_blob(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """The starter's English data and pizza orders, lexical tier only (a second, different model)."""
    data = tmp_path_factory.mktemp("pizza")
    shutil.copy(ROOT / "config" / "nlu" / "en.yml", data / "en.yml")
    (data / "pizza.en.yml").write_text(PIZZA)
    model = train(load_paths([data]), None, options=TrainOptions(semantic=False))
    model.meta["version"] = "pizza-1"
    return model.to_bytes()


async def two_models(store: Repositories, starter: bytes, pizza: bytes) -> None:
    """The starter model active, the pizza model a version of the account beside it."""
    await install(store, starter)
    info = {"intents": 2, "examples": 10, "created_by": "test", "learned_from": [LEARNED_FROM]}
    await store.nlu.save_nlu_model("default", "pizza-1", pizza, info, utcnow())


async def parsed_by(client: TestClient, visitor: str, inbox_id: str | None) -> dict[str, Any]:
    """A visitor of the web chat ``inbox_id`` (``None``: the account's first) orders a pizza: the
    NLU result stored on their message."""
    from conversations.traffic import Identity, Inbound

    inbound = Inbound("default", "webchat", f"{visitor}:o", Identity("webchat", visitor), ORDER, inbox_id=inbox_id)
    recorded, task = await client.server.app[PIPELINE].receive(inbound)
    assert task is not None
    await task
    message = await client.server.app[STORE].messages.get_message(recorded.message.id)
    assert message is not None and message.nlu is not None
    return dict(message.nlu)


async def test_the_pinned_inbox_is_answered_by_its_model_the_others_by_the_active_one(
    embedded: EmbeddedMongo,
    db_name: str,
    store: Repositories,
    starter_blob: bytes,
    pizza_blob: bytes,
    start_client: Any,
) -> None:
    await two_models(store, starter_blob, pizza_blob)
    client = await start_client(make_settings(embedded.uri, db_name))
    pizzeria = await web_chat(client, "Pizzeria", model="pizza-1")
    assert pizzeria["routing"] == {"model": "pizza-1"}
    shop = await web_chat(client, "Shop")

    pinned = await parsed_by(client, "ann", pizzeria["id"])
    assert pinned["model_version"] == "pizza-1" and pinned["intent"] == "order_pizza"
    for visitor, inbox_id in (("bea", shop["id"]), ("cid", None)):
        active = await parsed_by(client, visitor, inbox_id)
        assert active["model_version"] == "starter-1" and active["intent"] != "order_pizza", visitor

    # pinned back to the account's active model (null)
    change = {"routing": {"model": None}}
    patched = await client.patch(f"/api/accounts/default/inboxes/{pizzeria['id']}", json=change, headers=INSTALL)
    assert patched.status == 200 and (await patched.json())["routing"] == {}


async def test_a_pinned_version_retired_later_gives_way_to_the_active_model_in_every_process(
    embedded: EmbeddedMongo,
    db_name: str,
    store: Repositories,
    starter_blob: bytes,
    pizza_blob: bytes,
    start_client: Any,
) -> None:
    await two_models(store, starter_blob, pizza_blob)
    settings = make_settings(embedded.uri, db_name)
    first, second = await start_client(settings), await start_client(settings)
    pizzeria = await web_chat(first, "Pizzeria", model="pizza-1")
    assert (await parsed_by(first, "ann", pizzeria["id"]))["model_version"] == "pizza-1"  # loaded in the first

    assert await store.nlu.retire_nlu_models("default", [LEARNED_FROM], "erasure", utcnow()) == ["pizza-1"]

    async def gone() -> bool:  # the first process's next look at its pinned versions
        parse = await first.server.app[NLU].parse("default", ORDER, "pizza-1")
        return parse is not None and parse.model_version == "starter-1"

    await wait_for(gone)
    for client, visitor in ((first, "bea"), (second, "cid")):
        assert (await parsed_by(client, visitor, pizzeria["id"]))["model_version"] == "starter-1"

    # a retired version cannot be pinned again
    change = {"routing": {"model": "pizza-1"}}
    patched = await first.patch(f"/api/accounts/default/inboxes/{pizzeria['id']}", json=change, headers=INSTALL)
    assert patched.status == 400 and "retired" in (await patched.json())["detail"]


async def test_a_version_that_is_not_the_accounts_is_a_400_and_nothing_is_stored(
    embedded: EmbeddedMongo,
    db_name: str,
    store: Repositories,
    starter_blob: bytes,
    pizza_blob: bytes,
    start_client: Any,
) -> None:
    await two_models(store, starter_blob, pizza_blob)
    info = {"intents": 2, "examples": 10, "created_by": "test"}
    await store.nlu.save_nlu_model("rival", "rival-1", pizza_blob, info, utcnow())  # another account's
    client = await start_client(make_settings(embedded.uri, db_name))
    for model, says in (("rival-1", "not a trained model version"), ("nope-9", "not a trained model version")):
        body = {"channel": "webchat", "name": "x", "settings": {}, "routing": {"model": model}}
        answer = await client.post("/api/accounts/default/inboxes", json=body, headers=INSTALL)
        assert answer.status == 400 and says in (await answer.json())["detail"], model
    body = {"channel": "webchat", "name": "x", "settings": {}, "routing": {"model": "no spaces!"}}
    assert (await client.post("/api/accounts/default/inboxes", json=body, headers=INSTALL)).status == 400
    assert await store.inboxes.list_inboxes("default") == []

    desk = await web_chat(client, "Desk")
    change = {"routing": {"model": "rival-1"}}
    patched = await client.patch(f"/api/accounts/default/inboxes/{desk['id']}", json=change, headers=INSTALL)
    assert patched.status == 400 and "routing.model" in (await patched.json())["detail"]
    assert await store.inboxes.inbox_routing(desk["id"]) == {}


async def test_the_api_says_whether_an_inbox_s_pinned_version_can_still_answer_it(
    embedded: EmbeddedMongo, db_name: str, store: Repositories, start_client: Any
) -> None:
    """``model_available``: true while the pinned version can answer, false once it is retired or
    its document deleted (the active model answers then), null when none is pinned; read-only."""
    info = {"intents": 2, "examples": 10, "created_by": "test"}
    await store.nlu.save_nlu_model("default", "v-1", b"model", {**info, "learned_from": [LEARNED_FROM]}, utcnow())
    await store.nlu.save_nlu_model("default", "v-2", b"model", info, utcnow())
    client = await start_client(make_settings(embedded.uri, db_name))
    retired, deleted = await web_chat(client, "Retired", model="v-1"), await web_chat(client, "Deleted", model="v-2")
    plain = await web_chat(client, "Plain")
    assert (retired["model_available"], deleted["model_available"], plain["model_available"]) == (True, True, None)

    assert await store.nlu.retire_nlu_models("default", [LEARNED_FROM], "erasure", utcnow()) == ["v-1"]
    await raw_database_of(store).nlu_models.delete_one({"_id": "v-2"})
    listed = await client.get("/api/accounts/default/inboxes", headers=INSTALL)
    shown = {item["name"]: item["model_available"] for item in (await listed.json())["items"]}
    assert shown == {"Retired": False, "Deleted": False, "Plain": None}
    # a change of another setting answers the same; the field is not one a client sets
    path = f"/api/accounts/default/inboxes/{retired['id']}"
    patched = await client.patch(path, json={"name": "Renamed"}, headers=INSTALL)
    assert patched.status == 200 and (await patched.json())["model_available"] is False
    refused = await client.patch(path, json={"model_available": True}, headers=INSTALL)
    assert refused.status == 400
    cleared = await client.patch(path, json={"routing": {"model": None}}, headers=INSTALL)
    assert cleared.status == 200 and (await cleared.json())["model_available"] is None
