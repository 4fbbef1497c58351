"""An admin sets which inboxes an agent is a member of on the agents page: "every inbox" (the
default, and what every agent stored before has) or the ticked ones of the account; an inbox of
another account is refused with a 400 and changes nothing; an agent cannot change it at all."""

from __future__ import annotations

from aiohttp.test_utils import TestClient

from bot.keys import STORE
from bot.services.agents import add_agent
from bot.web.keys import FIRST_ADMIN
from conversations.models import utcnow
from tests.web.console.test_console import console_csrf, log_in


async def test_an_admin_ticks_an_agents_inboxes(client: TestClient) -> None:
    store = client.server.app[STORE]
    ours = await store.inboxes.create_inbox("default", "telegram", "Sales bot", {}, utcnow(), None)
    theirs = await store.inboxes.create_inbox("shop2", "telegram", "Rival bot", {}, utcnow(), None)
    assert ours is not None and theirs is not None
    ada, password = await add_agent(store, "default", "ada")
    assert ada is not None and ada.inboxes is None
    login, admin_password = client.server.app[FIRST_ADMIN]  # type: ignore[misc]
    assert (await log_in(client, login, admin_password)).status == 303

    page = await (await client.get("/admin")).text()
    assert 'id="every-inbox-ada" checked' in page  # every inbox, the default
    assert f'value="{ours.id}"' in page and 'value="first:webchat"' in page
    assert theirs.id not in page and "Rival bot" not in page  # another account's inbox is not offered
    token = await console_csrf(client, "/admin")
    form = {"csrf_token": token, "role": "agent", "teams": "", "capacity": "5", "active": "on", "inboxes_shown": "1"}

    saved = await client.post(
        f"/admin/agents/{ada.id}", data=[*form.items(), ("inbox", "first:webchat"), ("inbox", ours.id)]
    )
    assert saved.status == 200
    fresh = await store.agents.get_agent(ada.id)
    assert fresh is not None and fresh.inboxes == sorted(["first:webchat", ours.id])
    page = await (await client.get("/admin")).text()
    assert 'id="every-inbox-ada" checked' not in page and f'value="{ours.id}" checked' in page

    refused = await client.post(f"/admin/agents/{ada.id}", data=[*form.items(), ("inbox", theirs.id)])
    assert refused.status == 400 and theirs.id in await refused.text()
    fresh = await store.agents.get_agent(ada.id)
    assert fresh is not None and fresh.inboxes == sorted(["first:webchat", ours.id])  # unchanged

    await client.post(f"/admin/agents/{ada.id}", data={**form, "every_inbox": "on"})
    fresh = await store.agents.get_agent(ada.id)
    assert fresh is not None and fresh.inboxes is None
    none = await client.post(f"/admin/agents/{ada.id}", data=form)  # nothing ticked: no inbox at all
    assert none.status == 200
    fresh = await store.agents.get_agent(ada.id)
    assert fresh is not None and fresh.inboxes == []

    await client.post("/logout", data={"csrf_token": await console_csrf(client)})
    assert (await log_in(client, "ada", password)).status == 303  # an agent: no such page
    own = await console_csrf(client)  # the agent's own session's token: refused for the role, not the token
    sneaky = await client.post(f"/admin/agents/{ada.id}", data={**form, "csrf_token": own, "every_inbox": "on"})
    assert sneaky.status == 403
    fresh = await store.agents.get_agent(ada.id)
    assert fresh is not None and fresh.inboxes == []
