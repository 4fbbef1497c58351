"""Merging contacts and undoing it through the REST API: the account boundary from both sides,
bad input, and the audit trail naming the token."""

from __future__ import annotations

from typing import Any

from bot.keys import STORE
from bot.web.api.kit import issue_token
from tests import factories
from tests.router.test_queue import customer_writes
from tests.web.api.test_api import INSTALL_TOKEN, api_client, bearer


async def test_merge_and_undo_through_the_api(embedded: Any, db_name: str, start_client: Any) -> None:
    client = await api_client(embedded, db_name, start_client)
    store = client.server.app[STORE]
    token = bearer(await issue_token(store, "default", "crm", ["read", "write"], "test"))
    other = bearer(await issue_token(store, "shop2", "rival", ["read", "write"], "test"))
    reader = bearer(await issue_token(store, "default", "ro", ["read"], "test"))
    first = await store.threads.get_thread(await customer_writes(client.server.app, "erik"))
    second = await store.threads.get_thread(await customer_writes(client.server.app, "erik-phone"))
    assert first is not None and second is not None
    keep, gone = first.contact_id, second.contact_id
    path = f"/api/contacts/{keep}/merge"

    assert (await client.post(path, json={"from": gone}, headers=other)).status == 404  # not theirs
    assert (await client.post(f"/api/contacts/{gone}/merge", json={"from": keep}, headers=other)).status == 404
    assert (await client.post(path, json={"from": gone}, headers=reader)).status == 403
    for body in ({}, {"from": "nobody"}, {"from": gone, "extra": 1}, []):
        assert (await client.post(path, json=body, headers=token)).status == 400
    assert (await client.post(path, json={"from": keep}, headers=token)).status == 400  # itself
    missing = await client.post(path, json={"from": "con_000000000000000000000000"}, headers=token)
    assert missing.status == 404 and (await missing.json())["error"] == "not_found"

    made = await client.post(path, json={"from": gone}, headers=token)
    record = await made.json()
    assert made.status == 200 and record["state"] == "done" and record["threads"] == [second.id]
    contact = await (await client.get(f"/api/contacts/{keep}", headers=token)).json()
    assert {t["id"] for t in contact["threads"]} == {first.id, second.id}
    [entry] = await factories.audit(store, action="contact.merge")
    assert entry.actor == "api:crm" and entry.target == keep

    undo = f"/api/contact-merges/{record['id']}/undo"
    assert (await client.post(undo, headers=other)).status == 404  # another account's merge
    assert (await client.post("/api/contact-merges/mrg_000000000000000000000000/undo", headers=token)).status == 404
    undone = await client.post(undo, headers=token)
    assert undone.status == 200 and (await undone.json())["state"] == "undone"
    assert (await client.post(undo, headers=token)).status == 409  # once only
    back = await (await client.get(f"/api/contacts/{gone}", headers=token)).json()
    assert [t["id"] for t in back["threads"]] == [second.id]
    install = await client.post(path, json={"from": gone}, headers=bearer(INSTALL_TOKEN))
    assert install.status == 200  # the install-wide token acts in the contact's account
