"""``GET /api/search`` finds the account's messages by their words and its contacts, never
another account's; a bad query is a clear 400."""

from __future__ import annotations

from typing import Any

from bot.keys import STORE
from bot.web.api.kit import issue_token
from tests.router.test_queue import customer_writes
from tests.web.api.test_api import api_client, bearer


async def test_search_through_the_api(embedded: Any, db_name: str, start_client: Any) -> None:
    client = await api_client(embedded, db_name, start_client)
    store = client.server.app[STORE]
    token = bearer(await issue_token(store, "default", "crm", ["read"], "test"))
    other = bearer(await issue_token(store, "shop2", "rival", ["read"], "test"))
    await customer_writes(client.server.app, "erik", "Kur ir mans pasūtījums A-10234?")
    await customer_writes(client.server.app, "olga", "Где мой заказ?")

    found = await (await client.get("/api/search", params={"q": "A-10234 pasūt"}, headers=token)).json()
    assert [m["text"] for m in found["messages"]] == ["Kur ir mans pasūtījums A-10234?"]
    assert [m["text"] for m in (await (await client.get("/api/search?q=заказ", headers=token)).json())["messages"]] == [
        "Где мой заказ?"
    ]
    by_address = await (await client.get("/api/search?q=olga", headers=token)).json()
    assert [c["identities"][0]["address"] for c in by_address["contacts"]] == ["olga"]
    theirs = await (await client.get("/api/search?q=pasutijums", headers=other)).json()
    assert theirs == {"messages": [], "contacts": []}  # another account's search sees none of it
    assert (await client.get("/api/search?q=pasutijums", headers={"Authorization": ""})).status == 401
    for bad in ("", "x" * 201, " ,, "):
        response = await client.get("/api/search", params={"q": bad}, headers=token)
        assert response.status == 400, (bad, response.status)
