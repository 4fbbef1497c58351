"""An empty choice from a list teaches or moves nothing: the server refuses it with a clear 400."""

from __future__ import annotations

import re

from aiohttp.test_utils import TestClient

from bot.keys import STORE
from bot.services.agents import add_agent
from conversations.agent_models import Role
from tests.web.admin.test_intents import customer_says
from tests.web.console.test_console import console_csrf, log_in


async def test_moving_or_teaching_with_no_intent_chosen_is_refused(training_client: TestClient) -> None:
    client = training_client
    store = client.server.app[STORE]
    learned = await customer_says(client, "is shipping to Tallinn possible")
    _, password = await add_agent(store, "default", "ilze", name="Ilze", role=Role.ADMIN)
    await log_in(client, "ilze", password)
    html = await (await client.get("/admin/intents", params={"intent": "delivery"})).text()
    example = re.search(r'id="example-([^"]+)"', html)
    assert example is not None
    token = await console_csrf(client, "/admin/intents")

    move = await client.post(
        f"/admin/intents/examples/{example[1]}", data={"action": "move", "intent": "", "csrf_token": token}
    )
    assert move.status == 400 and await move.text() == "Choose the intent to move the example to."
    teach = await client.post(f"/admin/intents/learn/{learned}", data={"choice": "", "csrf_token": token})
    assert teach.status == 400 and await teach.text() == "Choose an intent, out of scope, or dismiss."
    html = await (await client.get("/admin/intents", params={"intent": "delivery"})).text()
    assert html.count('id="example-') == 4  # nothing moved
    assert not [e for e in await store.training.nlu_examples_of("default") if e.get("message_id") == learned]
