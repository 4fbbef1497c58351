"""SMS inboxes: two accounts on one install each add a Twilio number of their own (a Twilio account
each) beside the install's own number. The same customer texts all three: three conversations, each
in the account and inbox of the number written to, each answered from that number with that Twilio
account. Twilio calls one shared URL for every number: the ``To`` number says whose webhook it is,
and that inbox's auth token must have signed it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from bot.keys import STORE
from bot.web.api.kit import issue_token
from conversations.embedded import EmbeddedMongo
from conversations.models import utcnow
from tests.conftest import TEST_API_TOKEN, raw_database_of
from tests.fakes.twilio import AUTH_TOKEN, FakeTwilio, fixture, post_webhook
from tests.handlers.sms.test_sms import CUSTOMER, OUR_NUMBER, sms_settings
from tests.router.test_inbound import wait_for

INSTALL = {"Authorization": f"Bearer {TEST_API_TOKEN}"}
# each account's own Twilio account and number
LINES = {
    "default": ("AC" + "a" * 32, "token-of-default-twilio", "+14155550201"),
    "shop2": ("AC" + "b" * 32, "token-of-shop2-twilio", "+14155550202"),
}


@pytest.fixture
async def fakes() -> AsyncIterator[dict[str, FakeTwilio]]:
    """The install's Twilio account, and one per account's inbox (each accepts only its own SID and token)."""
    made = {"install": FakeTwilio(), **{owner: FakeTwilio(sid, token) for owner, (sid, token, _) in LINES.items()}}
    for fake in made.values():
        await fake.start()
    yield made
    for fake in made.values():
        await fake.stop()


async def _started(embedded: EmbeddedMongo, db_name: str, start_client: Any, fakes: dict[str, FakeTwilio]) -> Any:
    allowed = ", ".join(f.url.removeprefix("http://") for f in fakes.values())
    settings = sms_settings(
        embedded.uri, db_name, fakes["install"].url, egress={"allowed_destinations": allowed}, voice={"enabled": True}
    )
    client: TestClient = await start_client(settings)
    store = client.server.app[STORE]
    await store.accounts.ensure_account("shop2", "Shop two", utcnow())
    shop2 = {"Authorization": f"Bearer {await issue_token(store, 'shop2', 'ops', ['read', 'write'], 'test')}"}
    return client, {"default": INSTALL, "shop2": shop2}


def _settings(owner: str, fake: FakeTwilio, number: str | None = None) -> dict[str, str]:
    sid, token, own = LINES[owner]
    return {"account_sid": sid, "auth_token": token, "from_number": number or own, "api_base": fake.url}


async def _text(client: TestClient, to: str, sid: str, token: str) -> Any:
    params = fixture("sms", "inbound_text", To=to, MessageSid=sid, SmsSid=sid, SmsMessageSid=sid)
    return await post_webhook(client, "/webhooks/sms", params, token=token)


async def test_each_number_of_each_account_is_its_own_inbox(
    embedded: EmbeddedMongo, db_name: str, start_client: Any, fakes: dict[str, FakeTwilio]
) -> None:
    client, headers = await _started(embedded, db_name, start_client, fakes)
    store = client.server.app[STORE]
    inbox_of: dict[str, str] = {}
    for owner in LINES:
        body = {
            "channel": "sms",
            "name": f"{owner} line",
            "settings": _settings(owner, fakes[owner]),  # no `serves`, as stored before it: voice is on, so both
        }
        answer = await client.post(f"/api/accounts/{owner}/inboxes", json=body, headers=headers[owner])
        assert answer.status == 201, await answer.text()
        shown = await answer.json()
        assert shown["webhook_url"].endswith("/webhooks/sms")  # Twilio's one URL: the number says whose
        assert shown["secrets"] == {"auth_token": True} and shown["settings"]["from_number"] == LINES[owner][2]
        assert LINES[owner][1] not in json.dumps(shown)  # never shown back
        inbox_of[owner] = shown["id"]
    raw = await raw_database_of(store).inboxes.find({}).to_list()
    assert not any(token in str(raw) for _, token, _ in LINES.values())  # sealed at rest

    # the same customer texts the install's number and each account's
    tokens = {"install": AUTH_TOKEN, **{owner: LINES[owner][1] for owner in LINES}}
    numbers = {"install": OUR_NUMBER, **{owner: LINES[owner][2] for owner in LINES}}
    for n, owner in enumerate(numbers):
        sid = f"SM{n:032x}"
        assert (await _text(client, numbers[owner], sid, tokens[owner])).status == 200

    async def all_answered() -> bool:
        return all(len(fake.sent) >= 1 for fake in fakes.values())

    await wait_for(all_answered, timeout=30)
    for owner, fake in fakes.items():  # each answer from the number written to, with its Twilio account
        [sent] = fake.sent
        assert sent["To"] == CUSTOMER and sent["From"] == numbers[owner]
    threads = await raw_database_of(store).threads.find({}).to_list()
    assert sorted((t["account_id"], t["channel"], t.get("inbox_id") or "") for t in threads) == [
        ("default", "sms", ""),
        ("default", "sms", inbox_of["default"]),
        ("shop2", "sms", inbox_of["shop2"]),
    ]
    inbound = await raw_database_of(store).messages.find({"direction": "in"}).to_list()
    assert sorted(m["account_id"] for m in inbound) == ["default", "default", "shop2"]

    # a delivery report of an inbox's reply names the inbox's number as From: its account's message moves
    sid = fakes["shop2"].sent[0]["Sid"]

    async def reply_stored() -> bool:
        return await raw_database_of(store).messages.count_documents({"external_id": sid}) == 1

    await wait_for(reply_stored)
    report = fixture("sms", "status_delivered", MessageSid=sid, SmsSid=sid, From=numbers["shop2"])
    assert (await post_webhook(client, "/webhooks/sms", report, token=tokens["shop2"])).status == 200
    reply = await raw_database_of(store).messages.find_one({"external_id": sid})
    assert reply["account_id"] == "shop2" and reply["delivery_status"] == "delivered"

    # a call to an account's number (one for texts and calls) joins its inbox's SMS thread, in its account
    call = fixture("voice", "status_no_answer_inbound", To=numbers["shop2"], Called=numbers["shop2"])
    assert (await post_webhook(client, "/webhooks/voice", call, token=tokens["shop2"])).status == 200
    [missed] = await raw_database_of(store).messages.find({"external_id": call["CallSid"]}).to_list()
    thread = await raw_database_of(store).threads.find_one({"_id": missed["thread_id"]})
    assert missed["account_id"] == "shop2" and thread["inbox_id"] == inbox_of["shop2"]


async def test_a_number_answers_only_to_its_own_token_and_an_unknown_number_is_a_404(
    embedded: EmbeddedMongo,
    db_name: str,
    start_client: Any,
    fakes: dict[str, FakeTwilio],
    caplog: pytest.LogCaptureFixture,
) -> None:
    client, headers = await _started(embedded, db_name, start_client, fakes)
    for owner in LINES:
        body = {"channel": "sms", "name": "line", "settings": _settings(owner, fakes[owner])}
        assert (await client.post(f"/api/accounts/{owner}/inboxes", json=body, headers=headers[owner])).status == 201
    default_number, shop2_token = LINES["default"][2], LINES["shop2"][1]
    # signed with another inbox's token, or the install's: refused as the SMS webhook refuses a bad signature
    assert (await _text(client, default_number, "SM" + "1" * 32, shop2_token)).status == 403
    assert (await _text(client, default_number, "SM" + "2" * 32, AUTH_TOKEN)).status == 403
    # the install's number is not an inbox's: its own token only
    assert (await _text(client, OUR_NUMBER, "SM" + "3" * 32, shop2_token)).status == 403
    # a number no one has: a clear 404, whoever signed it
    for token in (AUTH_TOKEN, shop2_token):
        answer = await _text(client, "+14155550999", "SM" + "4" * 32, token)
        assert answer.status == 404 and (await answer.json())["error"] == "unknown_number"
    call = fixture("voice", "status_no_answer_inbound", To="+14155550999")
    assert (await post_webhook(client, "/webhooks/voice", call)).status == 404
    logged = [getattr(r, "omnirouter_fields", {}) for r in caplog.records if r.getMessage() == "twilio.unknown_number"]
    assert sorted(f.get("channel") for f in logged) == ["sms", "sms", "voice"]  # each one logged
    database = raw_database_of(client.server.app[STORE])
    assert await database.messages.count_documents({}) == 0 and await database.threads.count_documents({}) == 0
    assert all(not fake.sent for fake in fakes.values())


async def test_a_number_is_one_inbox_s_and_never_the_install_s(
    embedded: EmbeddedMongo, db_name: str, start_client: Any, fakes: dict[str, FakeTwilio]
) -> None:
    client, headers = await _started(embedded, db_name, start_client, fakes)
    first = {"channel": "sms", "name": "line", "settings": _settings("default", fakes["default"])}
    created = await client.post("/api/accounts/default/inboxes", json=first, headers=INSTALL)
    assert created.status == 201
    for number in (LINES["default"][2], OUR_NUMBER):  # another account's inbox's, the install's own
        body = {"channel": "sms", "name": "again", "settings": _settings("shop2", fakes["shop2"], number)}
        taken = await client.post("/api/accounts/shop2/inboxes", json=body, headers=headers["shop2"])
        assert taken.status == 409 and (await taken.json())["error"] == "inbox_taken", number
    inbox = (await created.json())["id"]
    change = {"settings": {"from_number": OUR_NUMBER}}
    moved = await client.patch(f"/api/accounts/default/inboxes/{inbox}", json=change, headers=INSTALL)
    assert moved.status == 409
    assert len(await client.server.app[STORE].inboxes.list_inboxes("shop2")) == 0


async def test_bad_sms_inbox_settings_are_a_clear_400(
    embedded: EmbeddedMongo, db_name: str, start_client: Any, fakes: dict[str, FakeTwilio]
) -> None:
    client, _ = await _started(embedded, db_name, start_client, fakes)
    good = _settings("default", fakes["default"])
    for change, says in (
        ({"from_number": "4155550201"}, "from_number"),
        ({"account_sid": "SK123"}, "account_sid"),
        ({"api_base": "http://10.0.0.1"}, "api_base"),
    ):
        body = {"channel": "sms", "name": "x", "settings": {**good, **change}}
        answer = await client.post("/api/accounts/default/inboxes", json=body, headers=INSTALL)
        assert answer.status == 400, (change, await answer.text())
        assert says in (await answer.json())["detail"]
    # an account's channel settings have no sms: a Twilio number of an account is an inbox
    put = await client.put("/api/accounts/default/channels/sms", json=good, headers=INSTALL)
    assert put.status in (404, 405)
    assert await client.server.app[STORE].inboxes.list_inboxes("default") == []


async def test_an_inbox_s_mms_file_is_fetched_with_its_credentials_and_a_disabled_inbox_takes_nothing(
    embedded: EmbeddedMongo, db_name: str, start_client: Any, fakes: dict[str, FakeTwilio]
) -> None:
    client, headers = await _started(embedded, db_name, start_client, fakes)
    body = {"channel": "sms", "name": "line", "settings": _settings("shop2", fakes["shop2"])}
    assert (await client.post("/api/accounts/shop2/inboxes", json=body, headers=headers["shop2"])).status == 201
    sid, token, number = LINES["shop2"]
    params = fixture("sms", "inbound_mms", To=number, NumMedia="1")
    params["MediaUrl0"] = params["MediaUrl0"].replace("AC0123456789abcdef0123456789abcdef", sid)
    fakes["shop2"].media["ME0a1b2c3d4e5f60718293a4b5c6d7e8f9"] = (b"\xff\xd8\xff\xe0 a photo", "image/jpeg")
    assert (await post_webhook(client, "/webhooks/sms", params, token=token)).status == 200
    message = await raw_database_of(client.server.app[STORE]).messages.find_one({"direction": "in"})
    assert message["account_id"] == "shop2"
    photo = await client.get(f"/api/messages/{message['_id']}/attachments/0", headers=headers["shop2"])
    assert photo.status == 200, await photo.text()
    assert await photo.read() == b"\xff\xd8\xff\xe0 a photo"  # only the shop2 Twilio account has it

    # a disabled inbox's number takes nothing (an inbox in use is read again within ten seconds)
    body = {"channel": "sms", "name": "off", "settings": _settings("default", fakes["default"])}
    off = (await (await client.post("/api/accounts/default/inboxes", json=body, headers=INSTALL)).json())["id"]
    change = {"disabled": True}
    assert (await client.patch(f"/api/accounts/default/inboxes/{off}", json=change, headers=INSTALL)).status == 200
    refused = await _text(client, LINES["default"][2], "SM" + "5" * 32, LINES["default"][1])
    assert refused.status == 404
    assert await raw_database_of(client.server.app[STORE]).messages.count_documents({"direction": "in"}) == 1
