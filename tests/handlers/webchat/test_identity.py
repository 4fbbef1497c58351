"""Identity verification of the website widget: a site's server signs its signed-in user's id
(``user_hash = HMAC-SHA256(widget secret, user_id)``); a matching ``identify`` frame makes the
socket's visitor that user's own, on every device, and anything else is refused."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from bot.handlers.webchat.embedding import identity_secret_name, user_hash
from bot.keys import STORE
from tests import factories
from tests.handlers.webchat.test_webchat import frames_until

SECRET = "site-secret-of-default"


async def identify(client: TestClient, user_id: str, given: str, account: str = "default") -> dict[str, Any]:
    """A new device of the user: connects with no token, identifies; the router's answer."""
    async with client.ws_connect("/webchat/ws", params={"account": account}) as ws:
        await ws.receive_json()  # welcome, as a new visitor
        await ws.send_json({"type": "identify", "user_id": user_id, "user_hash": given})
        answer: dict[str, Any] = await ws.receive_json()
        return answer


async def test_a_verified_user_finds_their_conversation_on_another_device(client: TestClient) -> None:
    await client.server.app[STORE].secrets.replace_sealed_secret(identity_secret_name("default"), SECRET)
    laptop = await identify(client, "customer-42", user_hash(SECRET, "customer-42"))
    assert laptop["type"] == "identified"
    async with client.ws_connect("/webchat/ws", params={"token": laptop["visitor_token"]}) as ws:
        assert (await ws.receive_json())["history"] == []
        await ws.send_json({"type": "message", "id": "m1", "text": "my order from the laptop"})
        await frames_until(ws, "decision")

    phone = await identify(client, "customer-42", user_hash(SECRET, "customer-42").upper())
    assert phone["type"] == "identified"
    async with client.ws_connect("/webchat/ws", params={"token": phone["visitor_token"]}) as ws:
        welcome = await ws.receive_json()
        assert welcome["history"][0]["text"] == "my order from the laptop"  # the same visitor

    other = await identify(client, "customer-43", user_hash(SECRET, "customer-43"))
    async with client.ws_connect("/webchat/ws", params={"token": other["visitor_token"]}) as ws:
        assert (await ws.receive_json())["history"] == []  # another user: nothing of customer-42's
    assert len(await factories.threads(client.server.app[STORE])) == 1


async def test_a_wrong_hash_or_no_secret_or_another_account_s_secret_is_refused(client: TestClient) -> None:
    right = user_hash(SECRET, "customer-42")
    assert (await identify(client, "customer-42", right))["code"] == "bad_identity"  # no secret made yet
    store = client.server.app[STORE]
    await factories.account(store, "shop2")
    await store.secrets.replace_sealed_secret(identity_secret_name("shop2"), SECRET)
    assert (await identify(client, "customer-42", right))["code"] == "bad_identity"  # shop2's secret, not ours
    assert (await identify(client, "customer-42", right, account="shop2"))["type"] == "identified"
    for user_id, given in (
        ("customer-43", right),  # signed for someone else
        ("customer-42", user_hash("guessed", "customer-42")),
        ("customer-42", "zz" * 32),
        ("", right),
        ("x" * 201, user_hash(SECRET, "x" * 201)),
    ):
        answer = await identify(client, user_id, given, account="shop2")
        assert answer == {"type": "error", "code": "bad_identity", "detail": "user_hash does not match user_id"}
