"""Twilio numbers of accounts on an install that has no Twilio number of its own (issue 17): with
``sms.for_accounts`` the SMS and voice webhooks are served for the accounts' inboxes alone, each
checked with its inbox's auth token and answered through its own Twilio account; each number
serves texts, calls or both (``serves``). Without the setting, such an inbox is refused with a 422
naming it. Both sides of every boundary: another inbox's token is a 403, a number no one has or
one whose inbox does not take that kind of traffic a 404, and nothing is stored for either."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from bot.keys import ADAPTERS, STORE
from bot.web.api.kit import issue_token
from conversations.embedded import EmbeddedMongo
from conversations.models import utcnow
from tests.conftest import TEST_API_TOKEN, make_settings, raw_database_of
from tests.fakes import reachable, running
from tests.fakes.twilio import AUTH_TOKEN, PUBLIC_URL, FakeTwilio, fixture, post_webhook
from tests.handlers.sms.test_sms import CUSTOMER, OUR_NUMBER, sms_settings
from tests.handlers.sms.test_sms_inboxes import LINES, _text
from tests.router.test_inbound import wait_for

INSTALL = {"Authorization": f"Bearer {TEST_API_TOKEN}"}
CALLS_ONLY = "+14155550209"  # shop2's second number: calls only


@pytest.fixture
async def fakes() -> AsyncIterator[dict[str, FakeTwilio]]:
    """Each account's own Twilio account (each accepts only its own SID and token)."""
    made = {owner: FakeTwilio(sid, token) for owner, (sid, token, _) in LINES.items()}
    async with running(*made.values()):
        yield made


async def _router(
    embedded: EmbeddedMongo, db_name: str, start_client: Any, fakes: dict[str, FakeTwilio], **sms: Any
) -> tuple[TestClient, dict[str, dict[str, str]]]:
    """A router with no ``[twilio]`` account or number of its own, and the account shop2."""
    settings = make_settings(
        embedded.uri, db_name, server={"public_url": PUBLIC_URL}, sms=sms, egress=reachable(fakes.values())
    )
    client: TestClient = await start_client(settings)
    store = client.server.app[STORE]
    await store.accounts.ensure_account("shop2", "Shop two", utcnow())
    shop2 = {"Authorization": f"Bearer {await issue_token(store, 'shop2', 'ops', ['read', 'write'], 'test')}"}
    return client, {"default": INSTALL, "shop2": shop2}


def _line(owner: str, fake: FakeTwilio, serves: str, number: str | None = None) -> dict[str, Any]:
    sid, token, own = LINES[owner]
    settings = {"account_sid": sid, "auth_token": token, "from_number": number or own, "api_base": fake.url}
    return {"channel": "sms", "name": f"{owner} {serves}", "settings": {**settings, "serves": serves}}


async def _call(client: TestClient, to: str, sid: str, token: str) -> Any:
    params = fixture("voice", "status_no_answer_inbound", To=to, Called=to, CallSid=sid)
    return await post_webhook(client, "/webhooks/voice", params, token=token)


async def _stored(client: TestClient) -> tuple[int, int]:
    database = raw_database_of(client.server.app[STORE])
    return await database.messages.count_documents({}), await database.threads.count_documents({})


async def test_without_sms_for_accounts_a_twilio_number_is_refused_naming_the_setting(
    embedded: EmbeddedMongo, db_name: str, start_client: Any, fakes: dict[str, FakeTwilio]
) -> None:
    client, headers = await _router(embedded, db_name, start_client, fakes)
    assert "sms" not in client.server.app[ADAPTERS] and "voice" not in client.server.app[ADAPTERS]
    for owner in LINES:
        answer = await client.post(
            f"/api/accounts/{owner}/inboxes", json=_line(owner, fakes[owner], "both"), headers=headers[owner]
        )
        assert answer.status == 422, await answer.text()
        shown = await answer.json()
        assert shown["error"] == "channel_not_served" and "sms.for_accounts = true" in shown["detail"]
    assert await client.server.app[STORE].inboxes.list_inboxes("shop2") == []
    # nor are the webhooks served
    assert (await _text(client, LINES["shop2"][2], "SM" + "1" * 32, LINES["shop2"][1])).status == 404
    assert (await _call(client, LINES["shop2"][2], "CA" + "1" * 32, LINES["shop2"][1])).status == 404
    assert await _stored(client) == (0, 0)


async def test_accounts_numbers_take_texts_and_calls_on_an_install_without_a_number(
    embedded: EmbeddedMongo, db_name: str, start_client: Any, fakes: dict[str, FakeTwilio]
) -> None:
    client, headers = await _router(embedded, db_name, start_client, fakes, for_accounts=True)
    lines = {"default": _line("default", fakes["default"], "both"), "shop2": _line("shop2", fakes["shop2"], "sms")}
    lines["shop2-calls"] = _line("shop2", fakes["shop2"], "calls", CALLS_ONLY)
    inbox_of = {}
    for key, body in lines.items():
        owner = key.removesuffix("-calls")
        answer = await client.post(f"/api/accounts/{owner}/inboxes", json=body, headers=headers[owner])
        assert answer.status == 201, await answer.text()
        shown = await answer.json()
        assert shown["settings"]["serves"] == body["settings"]["serves"]
        inbox_of[key] = shown["id"]
    numbers = {"default": LINES["default"][2], "shop2": LINES["shop2"][2], "shop2-calls": CALLS_ONLY}
    tokens = {"default": LINES["default"][1], "shop2": LINES["shop2"][1], "shop2-calls": LINES["shop2"][1]}

    # texts: to the numbers that take them, each answered from that number through its Twilio account
    for n, key in enumerate(("default", "shop2")):
        assert (await _text(client, numbers[key], f"SM{n:032x}", tokens[key])).status == 200

    async def answered() -> bool:
        return all(len(fake.sent) >= 1 for fake in fakes.values())

    await wait_for(answered, timeout=30)
    assert [(s["To"], s["From"]) for s in fakes["default"].sent] == [(CUSTOMER, numbers["default"])]
    assert [(s["To"], s["From"]) for s in fakes["shop2"].sent] == [(CUSTOMER, numbers["shop2"])]

    # calls: to the numbers that take them, each in its inbox: a number for both joins its SMS thread
    for n, key in enumerate(("default", "shop2-calls")):
        assert (await _call(client, numbers[key], f"CA{n:032x}", tokens[key])).status == 200
    database = raw_database_of(client.server.app[STORE])
    threads = await database.threads.find({}).to_list()
    assert sorted((t["account_id"], t["channel"], t["inbox_id"]) for t in threads) == sorted(
        [
            ("default", "sms", inbox_of["default"]),
            ("shop2", "sms", inbox_of["shop2"]),
            ("shop2", "voice", inbox_of["shop2-calls"]),
        ]
    )
    calls = await database.messages.find({"external_id": {"$regex": "^CA"}}).to_list()
    thread_of = {t["_id"]: (t["account_id"], t["inbox_id"]) for t in threads}
    assert sorted(thread_of[c["thread_id"]] for c in calls) == sorted(
        [("default", inbox_of["default"]), ("shop2", inbox_of["shop2-calls"])]
    )
    assert all(c["account_id"] == thread_of[c["thread_id"]][0] for c in calls)


async def test_a_number_answers_to_its_own_token_and_only_for_what_it_serves(
    embedded: EmbeddedMongo, db_name: str, start_client: Any, fakes: dict[str, FakeTwilio]
) -> None:
    client, headers = await _router(embedded, db_name, start_client, fakes, for_accounts=True)
    bodies = (
        ("default", _line("default", fakes["default"], "both")),
        ("shop2", _line("shop2", fakes["shop2"], "sms")),
        ("shop2", _line("shop2", fakes["shop2"], "calls", CALLS_ONLY)),
    )
    for owner, body in bodies:
        assert (await client.post(f"/api/accounts/{owner}/inboxes", json=body, headers=headers[owner])).status == 201
    default, shop2 = LINES["default"], LINES["shop2"]
    # another inbox's token, or none the install has (it has no number and so no token: ""): 403
    for token in (shop2[1], ""):
        assert (await _text(client, default[2], "SM" + "1" * 32, token)).status == 403
        assert (await _call(client, default[2], "CA" + "1" * 32, token)).status == 403
    assert (await _call(client, CALLS_ONLY, "CA" + "2" * 32, default[1])).status == 403
    # a number no one has: 404, whoever signed it (no install number takes the rest)
    for token in (default[1], shop2[1], ""):
        texted = await _text(client, "+14155550999", "SM" + "3" * 32, token)
        assert texted.status == 404 and (await texted.json())["error"] == "unknown_number"
        called = await _call(client, "+14155550999", "CA" + "3" * 32, token)
        assert called.status == 404 and (await called.json())["error"] == "unknown_number"
    # a number for texts takes no calls, one for calls no texts: 404, even signed by its own token
    called = await _call(client, shop2[2], "CA" + "4" * 32, shop2[1])
    assert called.status == 404 and (await called.json())["error"] == "not_served"
    texted = await _text(client, CALLS_ONLY, "SM" + "4" * 32, shop2[1])
    assert texted.status == 404 and (await texted.json())["error"] == "not_served"
    assert await _stored(client) == (0, 0)
    assert all(not fake.sent for fake in fakes.values())
    # nor does a test message go out from a number for calls only (no texts are sent from it)
    [calls_only] = [
        i for i in await client.server.app[STORE].inboxes.list_inboxes("shop2") if i.route.endswith(CALLS_ONLY)
    ]
    sent = await client.post(
        f"/api/accounts/shop2/inboxes/{calls_only.id}/test", json={"to": CUSTOMER}, headers=headers["shop2"]
    )
    assert sent.status == 502 and "calls only" in (await sent.json())["detail"]
    campaign = {"name": "Sale", "channel": "sms", "text": "Sale!", "inbox_id": calls_only.id}
    refused = await client.post("/api/accounts/shop2/campaigns", json=campaign, headers=headers["shop2"])
    assert refused.status == 422 and "calls only" in (await refused.json())["detail"]
    assert await client.server.app[STORE].campaigns.list_campaigns("shop2") == []
    assert not fakes["shop2"].sent


async def test_the_install_s_number_takes_calls_only_with_voice_enabled(
    embedded: EmbeddedMongo, db_name: str, start_client: Any, fakes: dict[str, FakeTwilio]
) -> None:
    """An install with its own number but ``voice.enabled`` off: calls to its number are a 404,
    while an account's number for calls takes them (the voice route is served for inboxes)."""
    settings = sms_settings(embedded.uri, db_name, fakes["default"].url, egress=reachable(fakes.values()))
    client: TestClient = await start_client(settings)
    body = _line("default", fakes["default"], "calls")
    assert (await client.post("/api/accounts/default/inboxes", json=body, headers=INSTALL)).status == 201
    refused = await _call(client, OUR_NUMBER, "CA" + "5" * 32, AUTH_TOKEN)
    assert refused.status == 404 and (await refused.json())["error"] == "not_served"
    assert await _stored(client) == (0, 0)
    assert (await _call(client, LINES["default"][2], "CA" + "6" * 32, LINES["default"][1])).status == 200
    [call] = await raw_database_of(client.server.app[STORE]).messages.find({}).to_list()
    assert call["account_id"] == "default" and call["channel"] == "voice"
