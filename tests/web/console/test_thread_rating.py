"""The console's thread view shows the customer's rating and comment of the conversation, to the
account's agents only."""

from __future__ import annotations

from aiohttp.test_utils import TestClient

from bot.keys import PIPELINE, STORE
from bot.services.agents import add_agent
from bot.web.keys import SERVICES
from conversations.agent_models import Role
from conversations.traffic import Identity, Inbound
from tests import factories
from tests.router.test_inbound import wait_for
from tests.router.test_queue import customer_writes
from tests.web.console.test_console import CSRF, log_in

PASSWORD = "correct horse battery"


async def says(client: TestClient, text: str, n: int) -> None:
    _, task = await client.server.app[PIPELINE].receive(
        Inbound("default", "webchat", f"rater:{n}", Identity("webchat", "rater"), text)
    )
    assert task is not None
    await task


async def test_the_thread_view_shows_the_rating_and_comment_to_the_accounts_agents_only(client: TestClient) -> None:
    app = client.server.app
    store = app[STORE]
    await store.accounts.set_account_fields("default", satisfaction={"enabled": True})
    thread_id = await customer_writes(app, "rater", "my parcel is late")
    agent, _ = await add_agent(store, "default", "ria", name="Ria", role=Role.AGENT, password=PASSWORD)
    assert agent is not None
    ann = await factories.agent(store, "ann", online=True)
    await app[SERVICES].threads.take(ann, thread_id)
    await app[SERVICES].threads.resolve(thread_id, ann)
    await says(client, "5", 1)
    await says(client, "Ria was lovely", 2)

    async def commented() -> bool:
        found = await store.satisfaction.of_threads("default", [thread_id])
        return bool(found) and found[0].comment == "Ria was lovely"

    await wait_for(commented)
    await log_in(client, "ria", PASSWORD)
    html = await (await client.get(f"/console?thread={thread_id}")).text()
    assert "Customer&#39;s rating: 5 of 5" in html and "<q>Ria was lovely</q>" in html

    # an agent of another account sees neither the conversation nor its rating
    await client.post("/logout", data={"csrf_token": CSRF.search(html).group(1)})  # type: ignore[union-attr]
    await factories.account(store, "acme")
    await add_agent(store, "acme", "zed", name="Zed", role=Role.ADMIN, password=PASSWORD)
    token = CSRF.search(await (await client.get("/login")).text()).group(1)  # type: ignore[union-attr]
    form = {"account": "acme", "login": "zed", "password": PASSWORD, "csrf_token": token}
    assert (await client.post("/login", data=form, allow_redirects=False)).status == 303
    other = await client.get(f"/console?thread={thread_id}")
    assert "Ria was lovely" not in await other.text() and "rating" not in await other.text()
