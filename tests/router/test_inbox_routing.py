"""An inbox handles its conversations otherwise than its account where its admin says so: without
the bot (straight to the agents), queued to its own team, with its own business hours and
out-of-hours reply; anything it leaves out is the account's. Set through the inboxes API."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from aiohttp.test_utils import TestClient

from bot.keys import PIPELINE, STORE
from bot.router.routing import CACHE_SECONDS
from conversations.embedded import EmbeddedMongo
from conversations.models import utcnow
from conversations.repositories import Repositories
from conversations.thread_models import DecisionAction, Thread
from conversations.traffic import Identity, Inbound
from tests import factories
from tests.conftest import TEST_API_TOKEN, make_settings, raw_database_of
from tests.nlu.conftest import install, starter_blob  # noqa: F401 (the session's starter model)

INSTALL = {"Authorization": f"Bearer {TEST_API_TOKEN}"}
QUESTION = "what are your opening hours?"


async def started(embedded: EmbeddedMongo, db_name: str, store: Repositories, blob: bytes, start_client: Any) -> Any:
    await install(store, blob)
    return await start_client(make_settings(embedded.uri, db_name))


async def web_chat(client: TestClient, name: str, **routing: Any) -> dict[str, Any]:
    body = {"channel": "webchat", "name": name, "settings": {}, "routing": routing}
    answer = await client.post("/api/accounts/default/inboxes", json=body, headers=INSTALL)
    assert answer.status == 201, await answer.text()
    return dict(await answer.json())


async def writes(client: TestClient, visitor: str, inbox_id: str | None) -> tuple[DecisionAction, Thread]:
    """A visitor of the web chat ``inbox_id`` (``None``: the account's first) asks the question."""
    inbound = Inbound("default", "webchat", f"{visitor}:q", Identity("webchat", visitor), QUESTION, inbox_id=inbox_id)
    recorded, task = await client.server.app[PIPELINE].receive(inbound)
    assert task is not None
    decision = await task
    thread = await client.server.app[STORE].threads.get_thread(recorded.thread.id)
    assert decision is not None and thread is not None
    return decision.action, thread


async def test_an_inbox_without_its_bot_queues_to_its_own_team(
    embedded: EmbeddedMongo, db_name: str, store: Repositories, starter_blob: bytes, start_client: Any
) -> None:
    client = await started(embedded, db_name, store, starter_blob, start_client)
    sales = await web_chat(client, "Sales", bot=False, team="sales")
    assert sales["routing"] == {"bot": False, "team": "sales"}

    action, thread = await writes(client, "ann", None)  # the account's first web chat: the bot answers
    assert action == DecisionAction.ANSWERED and thread.team is None
    action, thread = await writes(client, "bea", sales["id"])
    assert action == DecisionAction.QUEUED and thread.team == "sales" and thread.inbox_id == sales["id"]

    # the bot back on (null: the account's, which has one); the team stays
    change = {"routing": {"bot": None}}
    patched = await client.patch(f"/api/accounts/default/inboxes/{sales['id']}", json=change, headers=INSTALL)
    assert patched.status == 200 and (await patched.json())["routing"] == {"team": "sales"}
    await asyncio.sleep(CACHE_SECONDS + 0.1)  # the router reads an inbox's routing again this soon
    action, _ = await writes(client, "cid", sales["id"])
    assert action == DecisionAction.ANSWERED


async def test_the_bot_turned_off_by_a_change_holds(
    embedded: EmbeddedMongo, db_name: str, store: Repositories, starter_blob: bytes, start_client: Any
) -> None:
    """Set by a change (a boolean inside the inbox's document), not only when it is made."""
    client = await started(embedded, db_name, store, starter_blob, start_client)
    desk = await web_chat(client, "Desk")
    change = {"routing": {"bot": False}}
    patched = await client.patch(f"/api/accounts/default/inboxes/{desk['id']}", json=change, headers=INSTALL)
    assert patched.status == 200 and (await patched.json())["routing"] == {"bot": False}
    action, _ = await writes(client, "dan", desk["id"])
    assert action == DecisionAction.QUEUED


async def test_an_inbox_has_its_own_hours_and_out_of_hours_reply(
    embedded: EmbeddedMongo, db_name: str, store: Repositories, starter_blob: bytes, start_client: Any
) -> None:
    client = await started(embedded, db_name, store, starter_blob, start_client)
    other_day = (utcnow() + timedelta(days=3)).strftime("%a").lower()  # never open now
    night = await web_chat(
        client,
        "Night desk",
        bot=False,
        business_hours=f"{other_day} 09:00-10:00",
        timezone="UTC",
        out_of_hours_reply="The night desk opens on its day.",
    )
    day = await web_chat(client, "Day desk", bot=False)  # the account's hours: always open
    _, at_night = await writes(client, "ann", night["id"])
    _, by_day = await writes(client, "bea", day["id"])
    replies = {
        thread.id: [m.text for m in await factories.messages(store, direction="out") if m.thread_id == thread.id]
        for thread in (at_night, by_day)
    }
    assert "The night desk opens on its day." in replies[at_night.id]
    assert not any("night desk" in text for text in replies[by_day.id])


async def test_bad_inbox_routing_is_a_clear_400_and_nothing_is_stored(
    embedded: EmbeddedMongo, db_name: str, store: Repositories, starter_blob: bytes, start_client: Any
) -> None:
    client = await started(embedded, db_name, store, starter_blob, start_client)
    for routing, says in (
        ({"business_hours": "weekdays 9-5"}, "routing.business_hours"),
        ({"timezone": "Mars/Olympus"}, "routing.timezone"),
        ({"bot": "yes"}, "bot"),
        ({"colour": "red"}, "colour"),
        # a team as agents' teams are named: one name of letters, digits, - or _, at most 32
        ({"team": "sales team!"}, "routing.team"),
        ({"team": "sales\n"}, "routing.team"),
        ({"team": "s" * 33}, "routing.team"),
    ):
        body = {"channel": "webchat", "name": "x", "settings": {}, "routing": routing}
        answer = await client.post("/api/accounts/default/inboxes", json=body, headers=INSTALL)
        assert answer.status == 400, (routing, await answer.text())
        assert says in (await answer.json())["detail"], routing
    assert await store.inboxes.list_inboxes("default") == []
    good = await web_chat(client, "Good")
    bad = {"routing": {"business_hours": "mon-fri 17:00-09:00"}}
    answer = await client.patch(f"/api/accounts/default/inboxes/{good['id']}", json=bad, headers=INSTALL)
    assert answer.status == 400 and "closes before it opens" in (await answer.json())["detail"]
    assert (await store.inboxes.inbox_routing(good["id"])) == {}


async def test_a_team_an_earlier_release_took_is_kept_and_a_new_one_keeps_to_the_rule(
    embedded: EmbeddedMongo, db_name: str, store: Repositories, starter_blob: bytes, start_client: Any
) -> None:
    client = await started(embedded, db_name, store, starter_blob, start_client)
    inbox = await web_chat(client, "Night")
    # stored when any text was taken: a change of another setting leaves it, and it is not refused
    await raw_database_of(store).inboxes.update_one({"_id": inbox["id"]}, {"$set": {"routing.team": "Night desk"}})
    url = f"/api/accounts/default/inboxes/{inbox['id']}"
    answer = await client.patch(url, json={"routing": {"timezone": "Europe/Riga"}}, headers=INSTALL)
    assert answer.status == 200, await answer.text()
    assert await store.inboxes.inbox_routing(inbox["id"]) == {"team": "Night desk", "timezone": "Europe/Riga"}
    answer = await client.patch(url, json={"routing": {"team": "Day desk"}}, headers=INSTALL)
    assert answer.status == 400 and (await answer.json())["detail"].startswith("routing.team: a team is one name")
    answer = await client.patch(url, json={"routing": {"team": "day-desk"}}, headers=INSTALL)
    assert answer.status == 200 and (await store.inboxes.inbox_routing(inbox["id"]))["team"] == "day-desk"
