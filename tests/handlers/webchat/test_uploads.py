"""Files and images a web chat visitor sends (``POST /webchat/files``): kept in the store under the
account's quota, only of the kinds listed and only when their bytes are what they claim, shown back
to the visitor (signed for them alone) and to agents, never served as HTML."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from aiohttp.test_utils import TestClient

from bot.keys import STORE
from bot.services.contacts import erase_contact, export_contact, find_contact
from bot.settings import Settings
from tests import factories
from tests.conftest import make_settings
from tests.handlers.webchat.test_webchat import frames_until

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 200


async def visitor(client: TestClient, account: str = "default") -> str:
    """A new visitor's token (the chat's welcome)."""
    async with client.ws_connect("/webchat/ws", params={"account": account}) as ws:
        token: str = (await ws.receive_json())["visitor_token"]
        return token


async def send_file(
    client: TestClient,
    token: str,
    data: bytes,
    content_type: str = "image/png",
    name: str = "photo.png",
    client_id: str = "f1",
    **fields: str,
) -> tuple[int, dict[str, Any]]:
    form = aiohttp.FormData()
    form.add_field("token", token)
    form.add_field("id", client_id)
    for key, value in fields.items():
        form.add_field(key, value)
    form.add_field("file", data, filename=name, content_type=content_type)
    response = await client.post("/webchat/files", data=form)
    return response.status, await response.json()


async def test_a_visitor_s_image_is_kept_shown_back_to_them_and_to_the_agent(client: TestClient) -> None:
    token = await visitor(client)
    status, body = await send_file(client, token, PNG, name="receipt.png")
    assert status == 202, body
    assert body["file"]["name"] == "receipt.png" and body["file"]["image"] is True

    mine = await client.get(body["file"]["url"])  # the signed address the page shows
    assert mine.status == 200 and mine.content_type == "image/png" and await mine.read() == PNG
    assert mine.headers["Content-Security-Policy"] == "default-src 'none'; sandbox"
    other = await visitor(client)
    stolen = body["file"]["url"].replace(token.split(".")[0], other.split(".")[0])
    assert (await client.get(stolen)).status == 404  # signed for that visitor alone

    store = client.server.app[STORE]
    (message,) = await factories.messages(store, direction="in")
    assert message.id == body["message_id"] and message.attachments[0].mime_type == "image/png"
    seen = await client.get(f"/api/messages/{message.id}/attachments/0")  # as an agent opens it
    assert seen.status == 200 and await seen.read() == PNG
    (thread,) = await factories.threads(store)
    assert str(thread.status) == "queued"  # a file alone is for a person to look at

    async with client.ws_connect("/webchat/ws", params={"token": token}) as ws:
        (file_message,) = [m for m in (await ws.receive_json())["history"] if m["direction"] == "in"]
        assert file_message["file"]["url"] == body["file"]["url"]  # back another day: still there


async def test_files_of_a_kind_not_taken_or_not_what_they_claim_are_refused(client: TestClient) -> None:
    token = await visitor(client)
    refused = [
        (b"<html><script>alert(1)</script></html>", "text/html", "page.html"),
        (b"<svg xmlns='http://www.w3.org/2000/svg'/>", "image/svg+xml", "x.svg"),
        (b"<html>not a png</html>", "image/png", "fake.png"),
        (b"MZ\x90\x00", "application/octet-stream", "tool.exe"),
        (b"\xff\xfe\x00bad", "text/plain", "notes.txt"),
    ]
    for n, (data, kind, name) in enumerate(refused):
        status, body = await send_file(client, token, data, kind, name, client_id=f"f{n}")
        assert (status, body["error"]) == (415, "bad_type"), name
    status, _ = await send_file(client, token, b"%PDF-1.7\n...", "application/pdf", "order.pdf", client_id="ok")
    assert status == 202
    assert len(await factories.messages(client.server.app[STORE], direction="in")) == 1


async def test_a_file_from_no_visitor_or_not_a_form_is_refused(client: TestClient) -> None:
    assert (await send_file(client, "", PNG))[0] == 403
    assert (await send_file(client, "v123.forged.sig", PNG))[0] == 403
    response = await client.post("/webchat/files", json={"token": "x"})
    assert response.status == 400 and (await response.json())["error"] == "bad_upload"
    token = await visitor(client)
    assert (await send_file(client, token, PNG, client_id="no spaces allowed"))[0] == 400
    assert (await client.post("/webchat/files?account=nobody", data=b"x")).status == 404
    assert await factories.messages(client.server.app[STORE]) == []


async def test_a_file_over_the_limit_or_the_quota_is_refused(
    start_client: Callable[[Settings], Awaitable[TestClient]], embedded: Any, db_name: str
) -> None:
    client = await start_client(
        make_settings(embedded.uri, db_name, webchat={"max_file_mb": 0.001}, store={"files_quota_mb": 1})
    )
    token = await visitor(client)
    status, body = await send_file(client, token, PNG + b"\x00" * 1000)
    assert (status, body) == (413, {"error": "too_large", "limit_mb": 0.0})
    assert (await send_file(client, token, PNG, client_id="small"))[0] == 202

    store = client.server.app[STORE]
    await store.files.keep_upload(
        upload="upl_" + "0" * 24,
        account_id="default",
        contact_id="someone",
        thread_id="t",
        name="big.bin",
        content_type="application/octet-stream",
        data=b"\x00" * 999_700,
        quota=1_000_000,
    )
    status, body = await send_file(client, token, PNG, client_id="full")
    assert (status, body["error"]) == (413, "quota")
    assert len(await factories.messages(store, direction="in")) == 1
    async with client.ws_connect("/webchat/ws", params={"token": token}) as ws:
        await ws.receive_json()
        await ws.send_json({"type": "message", "id": "m1", "text": "still talking"})
        await frames_until(ws, "ack")


async def test_a_photo_of_a_few_megabytes_is_taken_and_one_over_ten_is_not(client: TestClient) -> None:
    token = await visitor(client)  # webchat.max_file_mb is 10 by default, beyond server.client_max_size
    assert (await send_file(client, token, PNG + b"\x00" * 3_000_000))[0] == 202
    status, body = await send_file(client, token, PNG + b"\x00" * 10_000_000, client_id="f2")
    assert (status, body) == (413, {"error": "too_large", "limit_mb": 10.0})


async def test_a_visitor_s_files_and_pre_chat_details_go_with_their_contact_s_export_and_erasure(
    client: TestClient,
) -> None:
    store = client.server.app[STORE]
    await store.accounts.set_account_fields(
        "default",
        widget={"prechat": {"enabled": True, "email": True, "consent": True, "privacy_url": "https://a.lv/p"}},
    )
    token = await visitor(client)
    async with client.ws_connect("/webchat/ws", params={"token": token}) as ws:
        await ws.receive_json()
        await ws.send_json({"type": "prechat", "email": "eva@example.lv", "consent": True})
        assert (await ws.receive_json())["type"] == "prechat_done"
    status, body = await send_file(client, token, PNG)
    assert status == 202
    (message,) = await factories.messages(store, direction="in")
    scope = await find_contact(store, "default", "email:eva@example.lv")  # the address the form gave
    exported = await export_contact(store, scope, "cli")
    assert [f["message_id"] for f in exported["data"]["files"]] == [message.id]
    (contact,) = exported["data"]["contacts"]
    assert contact["prechat"]["consent"]["privacy_url"] == "https://a.lv/p"
    await erase_contact(store, scope, "cli")
    assert await store.files.usage("default") == 0
    assert (await client.get(body["file"]["url"])).status == 404
    assert await store.contacts.contact_by_identity("default", "email", "eva@example.lv") is None
