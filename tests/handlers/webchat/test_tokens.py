"""Web chat visitor tokens: they expire when unused, are renewed when used, tokens of the previous
format are honoured for a while and renewed, and an erased contact's tokens name nobody: the
browser becomes a new visitor, never the erased one again."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

import aiohttp
from aiohttp.test_utils import TestClient

from bot.handlers.webchat.adapter import WebchatAdapter
from bot.handlers.webchat.tokens import VisitorTokens
from bot.keys import ADAPTERS, STORE
from bot.services.contacts import erase_contact, find_contact
from bot.settings import Settings
from tests.handlers.webchat.test_webchat import frames_until

DAY = 86400.0
TOKENS = VisitorTokens("test-secret")  # the tests' webchat.secret


async def _connect(client: TestClient, token: str = "") -> tuple[aiohttp.ClientWebSocketResponse, dict[str, Any]]:
    ws = await client.ws_connect("/webchat/ws", params={"token": token})
    return ws, await ws.receive_json()


async def _visitor_writes(client: TestClient, text: str) -> str:
    """A new visitor's conversation; returns their visitor id."""
    ws, welcome = await _connect(client)
    async with ws:
        await ws.send_json({"type": "message", "id": "m1", "text": text})
        await frames_until(ws, "decision")
    return str(welcome["visitor_token"]).split(".")[0]


def _previous_format(visitor: str, account: str = "default") -> str:
    """A token as the previous release issued it: ``<visitor>.<HMAC of account and visitor>``."""
    return f"{visitor}.{hmac.new(b'test-secret', f'{account}:{visitor}'.encode(), hashlib.sha256).hexdigest()[:32]}"


async def test_an_unused_token_expires_and_a_used_one_is_renewed(client: TestClient) -> None:
    visitor = await _visitor_writes(client, "where is parcel 77?")
    expired = TOKENS.token_for("default", visitor, time.time() - 91 * DAY)
    ws, welcome = await _connect(client, expired)
    await ws.close()
    assert welcome["history"] == [] and not welcome["visitor_token"].startswith(visitor + ".")

    halfway = TOKENS.token_for("default", visitor, time.time() - 50 * DAY)
    ws, welcome = await _connect(client, halfway)
    await ws.close()
    renewed = welcome["visitor_token"]
    assert welcome["history"][0]["text"] == "where is parcel 77?"
    assert renewed.startswith(visitor + ".") and renewed != halfway
    assert TOKENS.read("default", renewed) is not None
    ws, welcome = await _connect(client, renewed)  # a recent token comes back as it is
    await ws.close()
    assert welcome["visitor_token"] == renewed

    posted = await client.post("/webchat/messages", json={"id": "p1", "text": "hello?", "visitor_token": expired})
    assert posted.status == 202 and not (await posted.json())["visitor_token"].startswith(visitor + ".")


async def test_tokens_of_the_previous_format_are_honoured_for_a_while_and_renewed(
    client: TestClient, settings: Settings, start_client: Any, raw_database: Any
) -> None:
    visitor = await _visitor_writes(client, "an order from last year")
    ws, welcome = await _connect(client, _previous_format(visitor))
    await ws.close()
    assert welcome["history"][0]["text"] == "an order from last year"
    new_format = welcome["visitor_token"]
    assert new_format.startswith(visitor + ".") and new_format.count(".") == 2  # migrated

    honoured_until = await client.server.app[STORE].privacy.legacy_tokens_until(0)  # set by the first one met
    assert honoured_until / 1000 > time.time() + 89 * DAY
    # ninety days pass: what the store holds then, written past the repositories
    await raw_database.webchat_tokens.update_one({"_id": "legacy-tokens"}, {"$set": {"until_ms": 0}})
    later = await start_client(settings)  # a router after the grace period
    ws, welcome = await _connect(later, _previous_format(visitor))
    await ws.close()
    assert welcome["history"] == [] and not welcome["visitor_token"].startswith(visitor + ".")


async def test_an_erased_visitors_token_names_nobody(client: TestClient, raw_database: Any) -> None:
    store = client.server.app[STORE]
    visitor = await _visitor_writes(client, "my card ends 4242")
    token = TOKENS.token_for("default", visitor)
    ws, _ = await _connect(client, token)  # connected while the erasure happens
    await erase_contact(store, await find_contact(store, "default", f"webchat:{visitor}"), "cli")
    await ws.send_json({"type": "message", "id": "m2", "text": "are you there?"})
    closing = await ws.receive()
    assert closing.type == aiohttp.WSMsgType.CLOSE and closing.data == 4001
    assert await store.contacts.contact_by_identity("default", "webchat", visitor) is None  # not recreated

    ws, welcome = await _connect(client, token)
    await ws.close()
    assert welcome["history"] == [] and not welcome["visitor_token"].startswith(visitor + ".")
    posted = await client.post("/webchat/messages", json={"id": "p2", "text": "hello again", "visitor_token": token})
    body = await posted.json()
    assert posted.status == 202 and not body["visitor_token"].startswith(visitor + ".")
    assert await store.contacts.contact_by_identity("default", "webchat", visitor) is None
    assert await store.privacy.visitor_revoked("default", visitor)
    assert await raw_database.webchat_tokens.count_documents({"account_id": "default"}) == 1  # at rest:
    assert visitor not in str(await raw_database.webchat_tokens.find({}).to_list())  # kept as a hash


async def test_one_rule_on_every_path_the_adapters_parser_reads_no_token(client: TestClient) -> None:
    """The socket and ``POST /webchat/messages`` ask ``visitor_of``; the adapter's ``parse`` (the
    channel protocol's, without the store to ask) takes the visitor only from the route, never
    from a token in the body: so an erased visitor's token, unexpired and validly signed, names
    nobody on any path."""
    store, adapter = client.server.app[STORE], client.server.app[ADAPTERS]["webchat"]
    assert isinstance(adapter, WebchatAdapter)
    visitor = await _visitor_writes(client, "my card ends 4242")
    token = TOKENS.token_for("default", visitor)
    await erase_contact(store, await find_contact(store, "default", f"webchat:{visitor}"), "cli")
    body = json.dumps({"id": "p3", "text": "hello?", "visitor_token": token}).encode()
    [parsed] = adapter.parse(body, {})
    assert parsed.sender.address != visitor
    assert (await adapter.visitor_of("default", token))[0] != visitor
    [named] = adapter.parse(body, {"X-Omnirouter-Visitor": "vchecked"})
    assert named.sender.address == "vchecked"


async def test_a_token_of_another_account_or_a_forged_one_is_refused(client: TestClient) -> None:
    visitor = await _visitor_writes(client, "hello")
    forged = (
        TOKENS.token_for("other", visitor),
        f"{visitor}.1.{'0' * 32}",
        f"{visitor}.zz.{'0' * 32}",
        f"{visitor}.zz.zz.zz",
    )
    for token in forged:
        refused = await client.post("/webchat/messages", json={"id": "x", "text": "hi", "visitor_token": token})
        assert refused.status == 400 and "visitor_token" in (await refused.json())["detail"], token
