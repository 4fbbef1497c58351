"""The SMS channel end to end: signed Twilio webhooks in, the twilio client out to a fake Twilio."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
from aiohttp.test_utils import TestClient

from bot.handlers.kit.protocol import PermanentSendError, RetryableSendError
from bot.keys import ADAPTERS, OUTBOX, STORE
from bot.router.replies import ReplyRefused
from bot.services.agents import add_agent
from bot.services.replies import AgentFile
from bot.settings import Settings
from bot.web.keys import SERVICES
from conversations.agent_models import Role
from conversations.embedded import EmbeddedMongo
from conversations.thread_models import OutboxState
from conversations.traffic import DeliveryStatus, Identity, Outbound
from tests import factories
from tests.conftest import make_settings
from tests.fakes.twilio import ACCOUNT_SID, AUTH_TOKEN, PUBLIC_URL, FakeTwilio, fixture, post_webhook, signature
from tests.router.test_inbound import wait_for

CUSTOMER = "+14155550123"
OUR_NUMBER = "+14155550100"


def sms_settings(uri: str, db: str, api_base: str, **sections: dict[str, Any]) -> Settings:
    base: dict[str, dict[str, Any]] = {
        "server": {"public_url": PUBLIC_URL},
        "twilio": {"account_sid": ACCOUNT_SID, "auth_token": AUTH_TOKEN, "api_base": api_base},
        "sms": {"from_number": OUR_NUMBER},
    }
    for section, values in sections.items():
        base.setdefault(section, {}).update(values)
    return make_settings(uri, db, **base)


@pytest.fixture
async def twilio() -> AsyncIterator[FakeTwilio]:
    fake = FakeTwilio()
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
def sms_app(
    embedded: EmbeddedMongo, db_name: str, twilio: FakeTwilio, start_client: Any
) -> Callable[..., Awaitable[TestClient]]:
    async def start(**sections: dict[str, Any]) -> TestClient:
        client: TestClient = await start_client(sms_settings(embedded.uri, db_name, twilio.url, **sections))
        return client

    return start


async def messages(client: TestClient, **query: Any) -> list[dict[str, Any]]:
    """The messages matching ``query`` as stored, oldest first."""
    return [message.to_doc() for message in await factories.messages(client.server.app[STORE], **query)]


async def test_a_text_is_recorded_once_and_the_reply_goes_out_through_twilio(sms_app: Any, twilio: FakeTwilio) -> None:
    client = await sms_app()
    params = fixture("sms", "inbound_text")
    first = await post_webhook(client, "/webhooks/sms", params)
    assert first.status == 200 and first.content_type == "text/xml"
    assert "<Response></Response>" in await first.text()
    again = await post_webhook(client, "/webhooks/sms", params)  # Twilio retrying
    assert again.status == 200

    [inbound] = await messages(client, direction="in")
    assert inbound["text"] == "Where is my order 1042?" and inbound["external_id"] == params["MessageSid"]
    assert inbound["sender"]["address"] == CUSTOMER
    await wait_for(lambda: _sent(twilio, 1))
    [sent] = twilio.sent
    assert sent["To"] == CUSTOMER and sent["From"] == OUR_NUMBER
    assert sent["Body"].startswith("Thanks for your message!")
    assert sent["StatusCallback"] == f"{PUBLIC_URL}/webhooks/sms"

    async def stored_as_sent() -> bool:
        return bool(await messages(client, direction="out", external_id=sent["Sid"]))

    await wait_for(stored_as_sent)
    # delivery reports move the status forward only, and a repeated report changes nothing
    for name in ("status_sent", "status_delivered", "status_delivered", "status_sent"):
        report = fixture("sms", name, MessageSid=sent["Sid"], SmsSid=sent["Sid"])
        assert (await post_webhook(client, "/webhooks/sms", report)).status == 200
    [reply] = await messages(client, direction="out")
    assert reply["delivery_status"] == "delivered"
    # the contact carries the phone number, so other channels with this number merge into it
    owner = await client.server.app[STORE].contacts.contact_by_identity("default", "phone", CUSTOMER)
    assert owner is not None and owner == inbound["contact_id"]


async def _sent(twilio: FakeTwilio, count: int) -> bool:
    return len(twilio.sent) >= count


async def test_failed_delivery_reports_keep_the_error(sms_app: Any, twilio: FakeTwilio) -> None:
    client = await sms_app()
    await post_webhook(client, "/webhooks/sms", fixture("sms", "inbound_text"))
    await wait_for(lambda: _sent(twilio, 1))
    sid = twilio.sent[0]["Sid"]
    await wait_for(lambda: _has(client, direction="out", external_id=sid))
    report = fixture("sms", "status_undelivered", MessageSid=sid, SmsSid=sid)
    assert (await post_webhook(client, "/webhooks/sms", report)).status == 200
    late = fixture("sms", "status_delivered", MessageSid=sid, SmsSid=sid)
    assert (await post_webhook(client, "/webhooks/sms", late)).status == 200
    [reply] = await messages(client, direction="out")
    assert reply["delivery_status"] == DeliveryStatus.FAILED
    assert await client.server.app[STORE].messages.delivery_error(reply["_id"]) == "undelivered (30005)"


async def _has(client: TestClient, **query: Any) -> bool:
    return bool(await messages(client, **query))


async def test_signatures_are_checked_against_the_public_url(sms_app: Any) -> None:
    client = await sms_app()
    params = fixture("sms", "inbound_text")
    internal = f"http://127.0.0.1:{client.server.port}/webhooks/sms"
    cases = [
        await post_webhook(client, "/webhooks/sms", params, token="not-the-token"),
        await post_webhook(client, "/webhooks/sms", params, sign_url=internal),  # not what Twilio called
        await client.post("/webhooks/sms", data=params),  # unsigned
    ]
    tampered = dict(params)
    signed = await post_webhook(client, "/webhooks/sms", params, headers={"X-Test": "1"})
    assert signed.status == 200
    tampered["Body"] = "give me a refund"
    forged = await client.post(
        "/webhooks/sms", data=tampered, headers={"X-Twilio-Signature": signature(PUBLIC_URL + "/webhooks/sms", params)}
    )
    for response in [*cases, forged]:
        assert response.status == 403
        assert (await response.json())["error"] == "forbidden"
    assert len(await messages(client, direction="in")) == 1  # only the properly signed one


async def test_malformed_and_unsupported_webhooks(sms_app: Any) -> None:
    client = await sms_app()
    without_sid = {k: v for k, v in fixture("sms", "inbound_text").items() if k not in ("MessageSid", "SmsSid")}
    bad = await post_webhook(client, "/webhooks/sms", without_sid)
    assert bad.status == 400 and (await bad.json())["detail"] == "missing MessageSid"
    without_from = {k: v for k, v in fixture("sms", "inbound_text").items() if k != "From"}
    assert (await (await post_webhook(client, "/webhooks/sms", without_from)).json())["detail"] == "missing From"
    media_missing = fixture("sms", "inbound_mms")
    del media_missing["MediaUrl1"]
    response = await post_webhook(client, "/webhooks/sms", media_missing)
    assert response.status == 400 and "MediaUrl1 is missing" in (await response.json())["detail"]
    nul_sid = {**fixture("sms", "inbound_text"), "MessageSid": "\x00", "SmsSid": "\x00"}  # found by bench/fuzz.py
    nul = await post_webhook(client, "/webhooks/sms", nul_sid)
    assert nul.status == 400 and (await nul.json())["detail"] == "the sms message id is empty"
    unknown = await post_webhook(client, "/webhooks/sms", fixture("sms", "status_partially_delivered"))
    assert unknown.status == 200  # well-formed but not ours to handle: acknowledged, logged
    assert await messages(client) == []


async def test_mms_media_are_attachments(sms_app: Any) -> None:
    client = await sms_app()
    params = fixture("sms", "inbound_mms")
    assert (await post_webhook(client, "/webhooks/sms", params)).status == 200
    [message] = await messages(client, direction="in")
    assert message["text"] == "Photos of the damaged box"
    assert [(a["kind"], a["mime_type"], a["url"]) for a in message["attachments"]] == [
        ("image", "image/jpeg", params["MediaUrl0"]),
        ("document", "application/pdf", params["MediaUrl1"]),
    ]
    assert message["attachments"][0]["provider_ref"] == urlparse(params["MediaUrl0"]).path


async def test_a_customers_mms_file_is_fetched_from_our_twilio_not_the_host_the_webhook_names(
    sms_app: Any, twilio: FakeTwilio
) -> None:
    """The media path is asked of twilio.api_base with our credentials; Twilio's redirect to the
    file's storage (another host here: localhost, allowed by name) gets no credentials; the file
    is kept, capped, and a redirect to a host the guard refuses is not followed."""
    host, port = twilio.url.removeprefix("http://").split(":")
    client = await sms_app(egress={"allowed_destinations": f"localhost:{port}"})
    store, adapter = client.server.app[STORE], client.server.app[ADAPTERS]["sms"]
    twilio.cdn_base = f"http://localhost:{port}"
    params = fixture("sms", "inbound_mms")
    params["MediaUrl0"] = params["MediaUrl0"].replace("https://api.twilio.com", "http://169.254.169.254")
    jpeg = b"\xff\xd8\xff\xe0 a damaged box"
    twilio.media["ME0a1b2c3d4e5f60718293a4b5c6d7e8f9"] = (jpeg, "image/jpeg")
    assert (await post_webhook(client, "/webhooks/sms", params)).status == 200
    [message] = await messages(client, direction="in")
    photo = await client.get(f"/api/messages/{message['_id']}/attachments/0")
    assert photo.status == 200, await photo.text()
    assert await photo.read() == jpeg
    assert photo.headers["Content-Type"] == "image/jpeg"
    assert twilio.cdn_auth == [""]  # the credentials stayed with Twilio's API
    kept = await store.files.cached("default", message["_id"], 0)
    assert kept is not None and kept.length == len(jpeg)

    missing = await client.get(f"/api/messages/{message['_id']}/attachments/1")  # Twilio has no such media
    assert missing.status == 502 and "404" in (await missing.json())["detail"]

    twilio.media["ME9f8e7d6c5b4a39281706f5e4d3c2b1a0"] = (b"%PDF" + b"x" * 2000, "application/pdf")
    capped = dataclasses.replace(adapter._settings, max_download_bytes=1000)
    adapter._settings, roomy = capped, adapter._settings
    too_big = await client.get(f"/api/messages/{message['_id']}/attachments/1")
    assert too_big.status == 413
    adapter._settings = roomy
    twilio.cdn_base = f"http://[::1]:{port}"  # storage at a loopback address no rule allows
    refused = await client.get(f"/api/messages/{message['_id']}/attachments/1")
    assert refused.status == 502 and "not a public address" in (await refused.json())["detail"]
    assert len(twilio.cdn_auth) == 2 and await store.files.cached("default", message["_id"], 1) is None
    assert host == "127.0.0.1"


async def test_an_mms_url_that_is_not_twilios_media_resource_is_shown_but_never_fetched(sms_app: Any) -> None:
    client = await sms_app()
    params = fixture("sms", "inbound_mms", MediaUrl0="https://evil.example/2010-04-01/x", NumMedia="1")
    del params["MediaUrl1"]
    assert (await post_webhook(client, "/webhooks/sms", params)).status == 200
    [message] = await messages(client, direction="in")
    assert "provider_ref" not in message["attachments"][0]
    response = await client.get(f"/api/messages/{message['_id']}/attachments/0")
    assert response.status == 409 and (await response.json())["error"] == "not_downloadable"


async def test_stop_blocks_everything_until_start(sms_app: Any, twilio: FakeTwilio) -> None:
    client = await sms_app(sms={"start_reply": "You are subscribed again. Reply STOP to stop."})
    app = client.server.app
    assert (await post_webhook(client, "/webhooks/sms", fixture("sms", "inbound_stop"))).status == 200
    await wait_for(lambda: _dispatched(client, fixture("sms", "inbound_stop")["MessageSid"]))
    [stop] = await messages(client, direction="in")
    assert stop["decision"]["action"] == "answered" and stop["decision"]["reason"] == "keyword:stop"
    thread = await app[STORE].threads.get_thread(stop["thread_id"])
    assert thread is not None and thread.status == "bot"  # a STOP is not a question for an agent
    assert await app[STORE].phone.opted_out("default", "sms", CUSTOMER)

    # anything for this number now is refused before it reaches Twilio
    blocked = await app[OUTBOX].enqueue_reply(
        dedup_key="agent-1",
        thread=thread,
        to=Identity("sms", CUSTOMER),
        text="Your order shipped",
        sender={"kind": "agent"},
    )
    await wait_for(lambda: _outbox_state(client, blocked.id, "dead"))
    [dead] = await app[STORE].outbox.list_outbox(None)
    assert "opted out (STOP)" in (dead.last_error or "")
    assert twilio.sent == []

    assert (await post_webhook(client, "/webhooks/sms", fixture("sms", "inbound_start"))).status == 200
    await wait_for(lambda: _sent(twilio, 1))
    assert twilio.bodies_to(CUSTOMER) == ["You are subscribed again. Reply STOP to stop."]
    assert not await app[STORE].phone.opted_out("default", "sms", CUSTOMER)
    await post_webhook(client, "/webhooks/sms", fixture("sms", "inbound_text"))
    await wait_for(lambda: _sent(twilio, 2))
    assert twilio.bodies_to(CUSTOMER)[1].startswith("Thanks for your message!")


async def _dispatched(client: TestClient, sid: str) -> bool:
    found = await messages(client, external_id=sid)
    return bool(found) and found[0].get("dispatch_state") == "done"


async def _outbox_state(client: TestClient, message_id: str, state: str) -> bool:
    items = await factories.outbox(client.server.app[STORE], state=OutboxState(state))
    return any(item.message_id == message_id for item in items)


async def test_help_gets_the_configured_answer_and_no_queue(sms_app: Any, twilio: FakeTwilio) -> None:
    client = await sms_app(sms={"help_reply": "Shop support: reply with your question. STOP to opt out."})
    assert (await post_webhook(client, "/webhooks/sms", fixture("sms", "inbound_help"))).status == 200
    await wait_for(lambda: _sent(twilio, 1))
    assert twilio.sent[0]["Body"] == "Shop support: reply with your question. STOP to opt out."
    assert await client.server.app[STORE].queue.queue_depth() == 0
    assert not await client.server.app[STORE].phone.opted_out("default", "sms", CUSTOMER)


async def test_a_long_reply_goes_out_in_parts_each_sent_once(sms_app: Any, twilio: FakeTwilio) -> None:
    text = " ".join(f"word{n}" for n in range(80))  # 469 GSM-7 characters: 4 single-segment parts
    client = await sms_app(sms={"max_segments": 1})
    adapter = client.server.app[ADAPTERS]["sms"]
    first_id = await adapter.send(outbound("msg_long", text))
    parts = twilio.bodies_to(CUSTOMER)
    assert len(parts) == 4 and all(len(p) <= 160 for p in parts)
    assert " ".join(parts) == text and first_id == twilio.sent[0]["Sid"]

    # part 2 of another message fails: the retry sends parts 2-4 only, part 1 is not repeated
    twilio.sent.clear()
    twilio.fail_on[twilio.calls + 2] = (503, {"code": 20500, "message": "Service Unavailable"})
    with pytest.raises(RetryableSendError, match="503"):
        await adapter.send(outbound("msg_long2", text))
    assert len(twilio.sent) == 1
    await adapter.send(outbound("msg_long2", text))
    assert twilio.bodies_to(CUSTOMER) == parts


def outbound(message_id: str, text: str, to: str = CUSTOMER) -> Outbound:
    return Outbound(
        account_id="default", channel="sms", thread_id="thr_x", message_id=message_id, to=Identity("sms", to), text=text
    )


async def test_twilio_errors_become_retries_or_dead_letters(sms_app: Any, twilio: FakeTwilio) -> None:
    client = await sms_app()
    adapter = client.server.app[ADAPTERS]["sms"]
    message = outbound("msg_e", "hello", to="+1415555")
    twilio.failures = [(429, {"code": 20429, "message": "Too Many Requests"})]
    with pytest.raises(RetryableSendError, match="429") as slowed:
        await adapter.send(message)
    assert slowed.value.retry_after is None  # no Retry-After: the outbox's own backoff
    twilio.failures = [(429, {"code": 20429, "message": "Too Many Requests"}, {"Retry-After": "7"})]
    with pytest.raises(RetryableSendError, match="429") as slowed:
        await adapter.send(message)
    assert slowed.value.retry_after == 7.0  # honoured, as WhatsApp's and Telegram's are
    twilio.failures = [(400, {"code": 21211, "message": "The 'To' number +1415555 is not a valid phone number."})]
    with pytest.raises(PermanentSendError, match="invalid 'To' number"):
        await adapter.send(message)
    twilio.failures = [(400, {"code": 21610, "message": "Attempt to send to unsubscribed recipient"})]
    with pytest.raises(PermanentSendError, match="replied STOP"):
        await adapter.send(message)
    await twilio.stop()  # Twilio unreachable: try again later
    with pytest.raises(RetryableSendError, match="unreachable"):
        await adapter.send(message)


async def test_a_store_outage_answers_503_and_the_retry_is_recorded_once(
    tmp_path: Path, twilio: FakeTwilio, start_client: Any
) -> None:
    server = EmbeddedMongo(tmp_path / "store")
    await server.start()
    try:
        client = await start_client(sms_settings(server.uri, "sms_outage", twilio.url))
        params = fixture("sms", "inbound_text")
        await server.stop()
        during = await post_webhook(client, "/webhooks/sms", params)
        assert during.status == 503 and during.headers["Retry-After"]
        await server.start()
        await wait_for(lambda: _healthy(client), timeout=15)
        for _ in range(2):
            assert (await post_webhook(client, "/webhooks/sms", params)).status == 200
        assert len(await messages(client, direction="in")) == 1
    finally:
        await server.stop()


async def _healthy(client: TestClient) -> bool:
    return (await client.get("/healthz")).status == 200


async def test_an_agents_file_goes_out_as_an_mms_from_a_signed_public_address(sms_app: Any, twilio: FakeTwilio) -> None:
    client = await sms_app()
    store = client.server.app[STORE]
    await post_webhook(client, "/webhooks/sms", fixture("sms", "inbound_text"))
    await wait_for(lambda: _sent(twilio, 1))  # the notice
    [thread] = await factories.threads(store)
    admin, _ = await add_agent(store, "default", "ola", name="Ola", role=Role.ADMIN)
    assert admin is not None
    png = b"\x89PNG\r\n\x1a\n" + b"\x01" * 30
    await client.server.app[SERVICES].replies.answer(
        thread.id, admin, "", "nonce-mms-1", AgentFile("map.png", "image/png", png)
    )
    await wait_for(lambda: _sent(twilio, 2))
    mms = twilio.sent[1]
    assert mms["To"] == CUSTOMER and mms["Body"] == ""
    url = mms["MediaUrl"]
    assert url.startswith(f"{PUBLIC_URL}/sms/files/upl_")
    path = url.removeprefix(PUBLIC_URL)
    fetched = await client.get(path)  # what Twilio fetches
    assert fetched.status == 200 and await fetched.read() == png and fetched.content_type == "image/png"
    for forged in (path.replace("signature=", "signature=0"), path.replace("14155550123", "14155550999")):
        assert (await client.get(forged)).status == 404
    usage = await store.files.usage("default")
    with pytest.raises(ReplyRefused, match=r"5\.0 MB"):  # more than an MMS carries: refused, nothing kept
        await client.server.app[SERVICES].replies.answer(
            thread.id, admin, "", "nonce-mms-2", AgentFile("scan.pdf", "application/pdf", b"%PDF" * 1_250_001)
        )
    assert await store.files.usage("default") == usage and len(twilio.sent) == 2


async def test_a_percent_encoded_sender_is_one_contact_with_the_decoded_one(sms_app: Any, twilio: FakeTwilio) -> None:
    """A relay that encoded ``From`` twice (``%2B1415…``) was stored and answered as is, and the
    same customer written plainly became a second, orphan contact."""
    client = await sms_app()
    encoded = fixture("sms", "inbound_text", From=CUSTOMER.replace("+", "%2B"), MessageSid="SM" + "e" * 32)
    assert (await post_webhook(client, "/webhooks/sms", encoded)).status == 200
    plain = fixture("sms", "inbound_text", From=CUSTOMER.replace("+1", "+1 "), MessageSid="SM" + "f" * 32)
    assert (await post_webhook(client, "/webhooks/sms", plain)).status == 200
    stored = await messages(client, direction="in")
    assert {m["sender"]["address"] for m in stored} == {CUSTOMER}
    assert len({m["contact_id"] for m in stored}) == 1
    await wait_for(lambda: _sent(twilio, 1))
    assert {s["To"] for s in twilio.sent} == {CUSTOMER}  # answered at the number, not at "%2B…"
