"""Who sees what, beyond the lists: the console's search, a customer's files and the live socket
show an agent who is a member of inbox A and not of inbox B what A holds and nothing of B; the
member of B (and a supervisor) get B's."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
from aiohttp.test_utils import TestClient

from bot.keys import STORE
from bot.services.agents import add_agent
from conversations.agent_models import Role
from conversations.repositories import Repositories
from tests.web.console.test_console_socket import browsers as browsers  # a fixture
from tests.web.console.test_console_socket import closed_within, logged_in, open_socket
from tests.web.console.test_inbox_membership import A, second_inbox, writes

PASSWORD = "correct horse battery"


async def people(store: Repositories, b: str) -> None:
    """ada: a member of A; bob: of B; sue: a supervisor who is a member of neither."""
    for login, keys, role in (("ada", [A], Role.AGENT), ("bob", [b], Role.AGENT), ("sue", [], Role.SUPERVISOR)):
        agent, _ = await add_agent(store, "default", login, role=role, password=PASSWORD)
        assert agent is not None
        await store.agents.update_agent(agent.id, inboxes=keys)


async def inbox_b_with_people(store: Repositories) -> str:
    """An extra inbox B (its key) and the :func:`people` of inboxes A and B."""
    b = await second_inbox(store)
    await people(store, b)
    return b


async def session(browsers: list[aiohttp.ClientSession], client: TestClient, login: str) -> aiohttp.ClientSession:
    return await logged_in(browsers, client, login, PASSWORD)


def url(client: TestClient, path: str) -> str:
    return f"http://127.0.0.1:{client.server.port}{path}"


async def test_search_finds_the_messages_and_contacts_of_the_agents_inboxes_only(
    client: TestClient, browsers: list[aiohttp.ClientSession]
) -> None:
    app = client.server.app
    store = app[STORE]
    b = await second_inbox(store)
    in_a = await writes(app, "ann", text="my parcel zebra42 is late")
    in_b = await writes(app, "bea", b, text="my parcel zebra42 never came")
    await people(store, b)
    found = {}
    for login in ("ada", "bob", "sue"):
        page = await (
            await (await session(browsers, client, login)).get(url(client, "/console/search?q=zebra42"))
        ).text()
        found[login] = {thread for thread in (in_a, in_b) if thread in page}
    assert found == {"ada": {in_a}, "bob": {in_b}, "sue": {in_a, in_b}}


async def test_results_of_other_inboxes_do_not_crowd_out_the_agents_own(
    client: TestClient, browsers: list[aiohttp.ClientSession]
) -> None:
    """A page of search results is 50 messages; 60 newer ones in inbox B must not hide A's."""
    app = client.server.app
    store = app[STORE]
    b = await second_inbox(store)
    in_a = await writes(app, "ann", text="walrus7 first")
    for n in range(60):
        await writes(app, f"bea{n}", b, text=f"walrus7 again {n}")
    await people(store, b)
    page = await (await (await session(browsers, client, "ada")).get(url(client, "/console/search?q=walrus7"))).text()
    assert in_a in page and "walrus7 again" not in page  # the API's search is the same function


async def test_a_customers_file_is_served_to_the_members_of_its_inbox_only(
    client: TestClient, browsers: list[aiohttp.ClientSession]
) -> None:
    app = client.server.app
    store = app[STORE]
    b = await second_inbox(store)
    in_b = await writes(app, "bea", b, text="here is my receipt")
    message = (await store.messages.thread_messages(in_b))[0]
    await store.messages._db.messages.update_one(
        {"_id": message.id}, {"$set": {"attachments": [{"kind": "document", "name": "receipt.txt"}]}}
    )
    await store.files.keep(
        account_id="default",
        contact_id=message.contact_id,
        thread_id=in_b,
        message_id=message.id,
        index=0,
        name="receipt.txt",
        content_type="text/plain",
        data=b"total 12.00",
        quota=10_000_000,
    )
    await people(store, b)
    path = url(client, f"/console/messages/{message.id}/attachments/0")
    statuses = {}
    for login in ("ada", "bob", "sue"):
        response = await (await session(browsers, client, login)).get(path)
        statuses[login] = (response.status, await response.read() if response.status == 200 else b"")
    assert statuses == {"ada": (404, b""), "bob": (200, b"total 12.00"), "sue": (200, b"total 12.00")}


async def frames_for(ws: aiohttp.ClientWebSocketResponse, seconds: float) -> list[str]:
    """The frames the socket receives within ``seconds``."""
    got: list[str] = []
    deadline = asyncio.get_running_loop().time() + seconds
    while (left := deadline - asyncio.get_running_loop().time()) > 0:
        try:
            frame = await asyncio.wait_for(ws.receive(), left)
        except TimeoutError:
            break
        if frame.type == aiohttp.WSMsgType.TEXT:
            got.append(frame.data)
    return got


async def test_no_event_of_another_inbox_reaches_an_agents_socket(
    client: TestClient, browsers: list[aiohttp.ClientSession]
) -> None:
    app: Any = client.server.app
    store = app[STORE]
    b = await inbox_b_with_people(store)
    sockets = {login: await open_socket(await session(browsers, client, login), client) for login in ("ada", "bob")}
    await frames_for(sockets["ada"], 1.0)  # the first refreshes, done
    await frames_for(sockets["bob"], 1.0)
    in_b = await writes(app, "bea", b, text="is anyone there?")
    ada_heard, bob_heard = await asyncio.gather(frames_for(sockets["ada"], 3.0), frames_for(sockets["bob"], 3.0))
    assert any(in_b in frame for frame in bob_heard)  # the member of B hears of it
    assert ada_heard == []  # nothing at all reaches the member of A alone
    in_a = await writes(app, "ann", text="hello from A")
    ada_heard = await frames_for(sockets["ada"], 3.0)
    assert any(in_a in frame for frame in ada_heard) and not any(in_b in frame for frame in ada_heard)


async def test_narrowing_an_agents_inboxes_closes_their_socket_and_it_reconnects_under_the_new_ones(
    client: TestClient, browsers: list[aiohttp.ClientSession]
) -> None:
    app: Any = client.server.app
    store = app[STORE]
    b = await inbox_b_with_people(store)
    ada = await store.agents.agent_by_login("default", "ada")
    assert ada is not None
    await store.agents.update_agent(ada.id, inboxes=[A, b])
    browser = await session(browsers, client, "ada")
    socket = await open_socket(browser, client)
    await store.agents.update_agent(ada.id, inboxes=[A])  # as the Admin page or the API do
    code, _ = await closed_within(socket, 6.0)
    assert code == 4403  # the page reloads (console.js) and reconnects
    again = await open_socket(browser, client)
    await frames_for(again, 1.0)
    in_b = await writes(app, "bea", b, text="still there?")
    assert not any(in_b in frame for frame in await frames_for(again, 3.0))
