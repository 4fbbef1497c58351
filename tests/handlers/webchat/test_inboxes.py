"""Web chat inboxes: two accounts, each with its first web chat and two web chat inboxes (a widget
for the shop, one for support). A visitor on each writes: every conversation lands in the inbox
its page is of, and nothing crosses an inbox or an account; a visitor's token of one web chat is
no key to another; an unknown or closed inbox is refused clearly, never with a 500."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from bot.keys import ADAPTERS, STORE
from conversations.membership import thread_match
from conversations.models import utcnow
from conversations.traffic import Identity
from tests import factories
from tests.handlers.webchat.test_several_processes import frames_for
from tests.handlers.webchat.test_webchat import frames_until

ACCOUNTS = ("default", "acme")


async def web_chats(client: TestClient) -> dict[str, dict[str, Any]]:
    """Per account: ``None`` (its first web chat) and two web chat inboxes, as query parameters."""
    store, places = client.server.app[STORE], {}
    await factories.account(store, "acme")
    for account in ACCOUNTS:
        for name in ("Shop", "Support"):
            config = {"greeting": f"{name} of {account} here", "sites": "https://shop.example"}
            inbox = await store.inboxes.create_inbox(account, "webchat", f"{name} {account}", config, utcnow(), None)
            assert inbox is not None
            places[f"{account}/{name}"] = {"account": account, "inbox": inbox.id}
        places[f"{account}/first"] = {"account": account}
    return places


async def write(client: TestClient, params: dict[str, str], text: str, token: str = "") -> dict[str, Any]:
    """A visitor of the web chat ``params`` writes ``text``: their welcome, token and message's ack."""
    async with client.ws_connect("/webchat/ws", params={**params, "token": token}) as ws:
        welcome = await ws.receive_json()
        await ws.send_json({"type": "message", "id": "c1", "text": text})
        ack = next(f for f in await frames_until(ws, "ack") if f["type"] == "ack")
        await frames_until(ws, "decision")
    return {"welcome": welcome, "token": welcome["visitor_token"], "ack": ack}


async def test_two_accounts_with_two_web_chat_inboxes_never_cross(client: TestClient) -> None:
    store = client.server.app[STORE]
    places = await web_chats(client)
    wrote = {where: await write(client, params, f"hello from {where}") for where, params in places.items()}

    for where, params in places.items():
        thread = await store.threads.get_thread(wrote[where]["ack"]["thread_id"])
        assert thread is not None
        assert (thread.account_id, thread.inbox_id) == (params["account"], params.get("inbox")), where
        assert thread.address == wrote[where]["token"].split(".")[0]
    for account in ACCOUNTS:  # one conversation and one message per web chat, each in its own
        threads = await factories.threads(store, account)
        assert sorted(str(t.inbox_id) for t in threads) == sorted(
            str(p.get("inbox")) for p in places.values() if p["account"] == account
        )
        inbound = await factories.messages(store, account, direction="in")
        by_thread = {t.id: t.inbox_id for t in threads}
        assert len(inbound) == 3 and len({by_thread[m.thread_id] for m in inbound}) == 3
        for message in inbound:
            where = next(
                w
                for w, p in places.items()
                if p["account"] == account and p.get("inbox") == by_thread[message.thread_id]
            )
            assert message.text == f"hello from {where}"

    # each visitor comes back to their own web chat and sees only their own conversation
    for where, params in places.items():
        async with client.ws_connect("/webchat/ws", params={**params, "token": wrote[where]["token"]}) as ws:
            welcome = await ws.receive_json()
        assert [m["text"] for m in welcome["history"] if m["direction"] == "in"] == [f"hello from {where}"]
        assert welcome["thread_id"] == wrote[where]["ack"]["thread_id"]


async def test_a_reply_reaches_the_visitor_of_its_inbox_only(client: TestClient) -> None:
    places = await web_chats(client)
    shop, support = places["acme/Shop"], places["acme/Support"]
    first = await write(client, shop, "my order?")
    second = await write(client, support, "my invoice?")
    async with (
        client.ws_connect("/webchat/ws", params={**shop, "token": first["token"]}) as on_shop,
        client.ws_connect("/webchat/ws", params={**support, "token": second["token"]}) as on_support,
    ):
        await on_shop.receive_json()
        await on_support.receive_json()
        thread_id = first["ack"]["thread_id"]
        reply = await client.post(f"/api/threads/{thread_id}/replies", json={"id": "r1", "text": "It ships today."})
        assert reply.status == 202, await reply.text()
        shop_frames, support_frames = await frames_for(on_shop, 2.0), await frames_for(on_support, 0.5)
    assert [f["text"] for f in shop_frames if f["type"] == "message"] == ["It ships today."]
    assert [f for f in support_frames if f["type"] == "message"] == []


async def test_an_agent_typing_shows_on_the_pages_of_the_conversations_web_chat_only(client: TestClient) -> None:
    places = await web_chats(client)
    shop = places["acme/Shop"]
    mine = await write(client, shop, "my order?")
    visitor = mine["token"].split(".")[0]
    webchat = client.server.app[ADAPTERS]["webchat"]
    async with client.ws_connect("/webchat/ws", params={**shop, "token": mine["token"]}) as page:
        await page.receive_json()
        assert not await webchat.typing("acme", visitor, places["acme/Support"]["inbox"])  # another web chat's
        assert [f for f in await frames_for(page, 0.3) if f["type"] == "typing"] == []
        assert await webchat.typing("acme", visitor, shop["inbox"])
        assert [f["type"] for f in await frames_for(page, 1.0)] == ["typing"]


async def test_a_token_of_one_web_chat_opens_no_other(client: TestClient) -> None:
    """Both sides: the token of the shop's widget keeps its visitor there; with any other inbox,
    the account's first web chat or another account's inbox, the socket starts a new visitor with
    an empty history and ``POST /webchat/messages`` refuses it (400), storing nothing."""
    store = client.server.app[STORE]
    places = await web_chats(client)
    shop = places["acme/Shop"]
    mine = await write(client, shop, "secret order 42")
    visitor, token = mine["token"].split(".")[0], mine["token"]

    same = await client.post(
        "/webchat/messages", params=shop, json={"id": "p1", "text": "again", "visitor_token": token}
    )
    assert same.status == 202 and (await same.json())["thread_id"] == mine["ack"]["thread_id"]
    before = len(await factories.messages(store, "acme", direction="in")) + len(await factories.messages(store))

    for where in ("acme/Support", "acme/first", "default/Shop", "default/first"):
        params = places[where]
        async with client.ws_connect("/webchat/ws", params={**params, "token": token}) as ws:
            welcome = await ws.receive_json()
        assert welcome["history"] == [] and welcome["thread_id"] is None, where
        assert not welcome["visitor_token"].startswith(visitor + "."), where
        posted = await client.post(
            "/webchat/messages", params=params, json={"id": "p2", "text": "let me in", "visitor_token": token}
        )
        assert posted.status == 400 and (await posted.json())["error"] == "bad_message", where
    after = len(await factories.messages(store, "acme", direction="in")) + len(await factories.messages(store))
    assert after == before
    # a file the visitor sends through another web chat is refused too
    form = aiohttp.FormData({"token": token, "id": "f1"})
    form.add_field("file", b"hello", filename="a.txt", content_type="text/plain")
    upload = await client.post("/webchat/files", params=places["acme/Support"], data=form)
    assert upload.status == 403
    # ... and taken through its own (both sides of the boundary), into the shop's conversation
    form = aiohttp.FormData({"token": token, "id": "f2"})
    form.add_field("file", b"hello", filename="a.txt", content_type="text/plain")
    upload = await client.post("/webchat/files", params=shop, data=form)
    assert upload.status < 300, await upload.text()
    files = [m for m in await factories.messages(store, "acme", direction="in") if m.attachments]
    assert [m.thread_id for m in files] == [mine["ack"]["thread_id"]]
    # the dated token rewritten into the old undated form (visitor and stamp as one id) opens nothing
    _, stamp, signature = token.split(".")
    undated = f"{visitor}:{stamp}.{signature}"
    posted = await client.post(
        "/webchat/messages", params=shop, json={"id": "p3", "text": "forever", "visitor_token": undated}
    )
    assert posted.status == 400


@pytest.mark.parametrize("case", ["unknown", "junk", "disabled", "other_account", "not_webchat"])
async def test_an_unknown_or_closed_inbox_is_a_clear_404(client: TestClient, case: str) -> None:
    store = client.server.app[STORE]
    places = await web_chats(client)
    inbox_id = places["acme/Shop"]["inbox"]
    params = {"account": "acme", "inbox": inbox_id}
    if case == "unknown":
        params["inbox"] = "inb_nope"
    elif case == "junk":
        params["inbox"] = "<x>" * 500 + "\u0000"
    elif case == "disabled":
        await store.inboxes.update_inbox("acme", inbox_id, {}, disabled=True)
    elif case == "other_account":
        params["account"] = "default"
    else:
        telegram = await store.inboxes.create_inbox("acme", "telegram", "Bot", {"token": "1:x"}, utcnow(), None)
        assert telegram is not None
        params["inbox"] = telegram.id
    expected = "inbox_disabled" if case == "disabled" else "unknown_inbox"

    page = await client.get("/chat", params=params, headers={"Accept-Language": "lv"})
    assert page.status == 404 and page.content_type == "text/html"
    assert 'id="chat-closed"' in await page.text() and 'lang="lv"' in await page.text()
    assert "Šī tērzēšana nav pieejama" in await page.text()  # says so in the visitor's language
    embedded = await client.get("/chat/embed", params=params)
    assert embedded.status == 404 and "chat-closed" in await embedded.text()
    config = await client.get("/widget/config", params=params)
    assert config.status == 404 and (await config.json())["error"] == "unknown_inbox"
    posted = await client.post("/webchat/messages", params=params, json={"id": "p1", "text": "hi"})
    assert posted.status == 404 and (await posted.json())["error"] == expected
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await client.ws_connect("/webchat/ws", params=params)
    assert refused.value.status == 404
    assert await factories.messages(store, "acme") == []


async def test_a_web_chat_inbox_has_its_own_name_greeting_and_sites(client: TestClient) -> None:
    store = client.server.app[STORE]
    places = await web_chats(client)
    await store.accounts.set_account_fields(
        "acme", widget={"sites": ["https://acme.example"], "color": "#112233", "greeting": "Hi"}
    )
    shop = places["acme/Shop"]
    inbox = await client.get("/widget/config", params=shop, headers={"Origin": "https://shop.example"})
    body = await inbox.json()
    assert body["allowed"] and body["title"] == "Shop acme" and body["greeting"] == "Shop of acme here"
    assert body["color"] == "#112233"  # the account's, the inbox has none of its own
    other = await client.get("/widget/config", params=shop, headers={"Origin": "https://acme.example"})
    assert not (await other.json())["allowed"]  # the inbox's sites, not the account's
    first = await client.get("/widget/config", params={"account": "acme"}, headers={"Origin": "https://acme.example"})
    assert (await first.json())["allowed"] and (await first.json())["title"] == ""
    framed = await client.get("/chat", params=shop)
    assert framed.status == 200
    assert framed.headers["Content-Security-Policy"] == "frame-ancestors 'self' https://shop.example"


async def test_inbox_membership_decides_which_agents_see_a_web_chat_inboxs_conversations(client: TestClient) -> None:
    """An agent of the shop's widget sees its visitors' conversations, not the support widget's nor
    the first web chat's; one of both sees both."""
    store = client.server.app[STORE]
    places = await web_chats(client)
    shop, support = places["acme/Shop"], places["acme/Support"]
    in_shop = (await write(client, shop, "I need a human"))["ack"]["thread_id"]
    in_support = (await write(client, support, "I need a human"))["ack"]["thread_id"]
    in_first = (await write(client, places["acme/first"], "I need a human"))["ack"]["thread_id"]
    seen = {}
    for login, keys in (
        ("ann", [shop["inbox"]]),
        ("bob", [support["inbox"]]),
        ("cid", [shop["inbox"], "first:webchat"]),
    ):
        agent = await factories.agent(store, login, account="acme", inboxes=keys)
        threads = await store.threads.list_threads("acme", limit=50, within=thread_match(agent))
        seen[login] = {t.id for t in threads}
    assert seen == {"ann": {in_shop}, "bob": {in_support}, "cid": {in_shop, in_first}}


async def test_a_reply_in_another_inbox_is_not_pushed_to_the_visitors_page_of_this_one(client: TestClient) -> None:
    """A conversation of the visitor in the shop's widget (a campaign's, say) is not the support
    widget's: its replies are not pushed to the visitor's support page, nor shown in its history."""
    store = client.server.app[STORE]
    places = await web_chats(client)
    support = places["acme/Support"]
    mine = await write(client, support, "my invoice?")
    visitor = mine["token"].split(".")[0]
    contact_id = await store.contacts.contact_by_identity("acme", "webchat", visitor)
    assert contact_id is not None
    elsewhere = await store.threads.open_thread(
        "acme", contact_id, Identity("webchat", visitor), utcnow(), places["acme/Shop"]["inbox"]
    )
    async with client.ws_connect("/webchat/ws", params={**support, "token": mine["token"]}) as ws:
        await ws.receive_json()
        for thread_id, text in ((elsewhere.id, "From the shop"), (mine["ack"]["thread_id"], "From support")):
            reply = await client.post(f"/api/threads/{thread_id}/replies", json={"id": text[-4:], "text": text})
            assert reply.status == 202, await reply.text()
        frames = await frames_for(ws, 2.0)
    assert [f["text"] for f in frames if f["type"] == "message"] == ["From support"]
    async with client.ws_connect("/webchat/ws", params={**support, "token": mine["token"]}) as ws:
        history = (await ws.receive_json())["history"]
    assert "From the shop" not in [m.get("text") for m in history]
