"""WhatsApp Cloud API webhooks: one recorded payload per event kind, the verification challenge,
signatures, batches, status reports that never move backwards, and every way a delivery can fail."""

from __future__ import annotations

import copy
import json
import logging
from datetime import timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from bot.keys import STORE
from conversations.models import from_epoch_ms, utcnow
from conversations.thread_models import Message
from conversations.traffic import DeliveryStatus, Direction
from tests.handlers import channels
from tests.handlers.channels import WA_VERIFY, fixture, post_whatsapp, sign


async def inbound_messages(client: TestClient) -> list[dict[str, Any]]:
    return await channels.inbound_messages(client, "whatsapp", "external_id")


async def deliver(client: TestClient, name: str) -> dict[str, Any]:
    return await channels.deliver(client, "whatsapp", name)


async def test_the_verification_challenge_is_echoed_only_for_the_right_token(router: TestClient) -> None:
    good = {"hub.mode": "subscribe", "hub.verify_token": WA_VERIFY, "hub.challenge": "1158201444"}
    response = await router.get("/webhooks/whatsapp", params=good)
    assert response.status == 200 and await response.text() == "1158201444"
    for bad in ({**good, "hub.verify_token": "nope"}, {**good, "hub.mode": "unsubscribe"}, {"hub.challenge": "1"}):
        refused = await router.get("/webhooks/whatsapp", params=bad)
        assert refused.status == 403 and (await refused.json())["error"] == "forbidden"


async def test_a_text_message_opens_a_thread_and_the_service_window(router: TestClient) -> None:
    assert await deliver(router, "text") == {"ok": True, "recorded": 1, "duplicates": 0, "statuses": 0}
    [message] = await inbound_messages(router)
    assert message["text"] == "Does it come in another color?"
    assert message["sender"] == {"kind": "customer", "address": "16505551234", "name": "Sheena Nelson"}
    thread = await router.server.app[STORE].threads.get_thread(message["thread_id"])
    sent_at = from_epoch_ms(1764072000 * 1000)
    assert thread.address == "16505551234" and thread.wa_window_ends_at == sent_at + timedelta(hours=24)
    owner = await router.server.app[STORE].contacts.contact_by_identity("default", "phone", "+16505551234")
    assert owner == message["contact_id"]  # the number the SMS channel will find


@pytest.mark.parametrize(
    ("name", "text", "reply_id"),
    [
        ("interactive_button_reply", "Track my order", "Track my order"),
        ("interactive_list_reply", "Returns", "returns"),
        ("template_button", "Stop promotions", "STOP_PROMOS"),
    ],
)
async def test_replies_to_buttons_lists_and_templates(router: TestClient, name: str, text: str, reply_id: str) -> None:
    await deliver(router, name)
    [message] = await inbound_messages(router)
    assert message["text"] == text and message["meta"]["reply_id"] == reply_id
    assert message["meta"]["reply_to"].startswith("wamid.FAKE")


@pytest.mark.parametrize(
    ("name", "text", "attachment"),
    [
        (
            "image",
            "This is the damaged box",
            {"kind": "image", "mime_type": "image/jpeg", "provider_ref": "1003383421387256"},
        ),
        (
            "document",
            "My receipt",
            {
                "kind": "document",
                "name": "receipt.pdf",
                "mime_type": "application/pdf",
                "provider_ref": "1003383421387257",
            },
        ),
        ("audio", "", {"kind": "audio", "mime_type": "audio/ogg; codecs=opus", "provider_ref": "1003383421387258"}),
        ("location", "Freedom Monument", {"kind": "location", "name": "Freedom Monument", "url": "geo:56.951,24.113"}),
        ("contacts", "", {"kind": "contact", "name": "Jānis Ozols", "provider_ref": "+371 2999 8888"}),
    ],
)
async def test_media_locations_and_contact_cards_are_attachments(
    router: TestClient, name: str, text: str, attachment: dict[str, Any]
) -> None:
    await deliver(router, name)
    [message] = await inbound_messages(router)
    assert message["text"] == text and message["attachments"] == [attachment]


async def test_every_entry_and_change_of_a_batch_is_handled(router: TestClient) -> None:
    assert await deliver(router, "batched") == {"ok": True, "recorded": 4, "duplicates": 0, "statuses": 1}
    messages = await inbound_messages(router)
    assert [m["text"] for m in messages] == ["First", "Tere!", "Second", "Third"]
    assert len({m["thread_id"] for m in messages}) == 2  # two customers
    assert await deliver(router, "batched") == {"ok": True, "recorded": 0, "duplicates": 4, "statuses": 1}


async def test_a_redelivered_message_is_stored_once(router: TestClient) -> None:
    await deliver(router, "text")
    assert (await deliver(router, "text"))["duplicates"] == 1
    assert len(await inbound_messages(router)) == 1


async def test_status_reports_move_forward_only(router: TestClient) -> None:
    store = router.server.app[STORE]
    outbound = Message(
        id="msg_out",
        account_id="default",
        thread_id="thr_x",
        contact_id="con_x",
        direction=Direction.OUT,
        channel="whatsapp",
        text="It does, in blue.",
        created_at=utcnow(),
        external_id="wamid.FAKE000001",
        delivery_status=DeliveryStatus.SENT,
        delivery_rank=DeliveryStatus.SENT.rank,
    )
    await store.messages.insert_message_once(outbound)

    async def status() -> str:
        return str((await store.messages.get_message(outbound.id)).delivery_status)

    await deliver(router, "status_read")
    assert await status() == "read"
    assert (await deliver(router, "status_delivered"))["statuses"] == 1  # late: acknowledged, ignored
    await deliver(router, "status_sent")
    assert await status() == "read"
    await deliver(router, "status_failed")
    failed = await store.messages.get_message(outbound.id)
    assert failed is not None and failed.delivery_status == "failed"
    assert await store.messages.delivery_error(outbound.id) == "131047: Re-engagement message"


async def test_a_status_for_an_unknown_message_is_acknowledged(router: TestClient) -> None:
    assert (await deliver(router, "status_delivered"))["statuses"] == 1


@pytest.mark.parametrize("signature", [None, "sha256=" + "0" * 64, "sha1=abc", "wrong"])
async def test_a_missing_or_bad_signature_is_refused_and_nothing_stored(
    router: TestClient, signature: str | None
) -> None:
    response = await post_whatsapp(router, fixture("whatsapp", "text"), signature=signature)
    assert response.status == (401 if signature is None else 403)
    assert await inbound_messages(router) == []


async def test_a_signature_of_another_body_is_refused(router: TestClient) -> None:
    body = json.dumps(fixture("whatsapp", "text")).encode()
    tampered = body.replace(b"another color", b"a free phone ")
    response = await post_whatsapp(router, tampered, signature=sign(body))
    assert response.status == 403 and await inbound_messages(router) == []


@pytest.mark.parametrize("name", ["account_update", "reaction"])
async def test_events_we_do_not_handle_are_acknowledged_and_logged(
    router: TestClient, name: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="omnirouter")
    response = await post_whatsapp(router, fixture("whatsapp", name))
    assert response.status == 200 and (await response.json())["ignored"]
    assert {"webhook.unsupported", "whatsapp.event_ignored"} <= {r.getMessage() for r in caplog.records}
    assert await inbound_messages(router) == []


async def test_unhandled_items_in_a_batch_do_not_hide_the_handled_ones(router: TestClient) -> None:
    payload = copy.deepcopy(fixture("whatsapp", "text"))
    reaction = fixture("whatsapp", "reaction")["entry"][0]["changes"][0]["value"]["messages"][0]
    payload["entry"][0]["changes"][0]["value"]["messages"].append(reaction)
    response = await post_whatsapp(router, payload)
    assert (await response.json())["recorded"] == 1


async def test_another_numbers_entries_are_not_taken_for_ours(router: TestClient) -> None:
    payload = copy.deepcopy(fixture("whatsapp", "text"))
    payload["entry"][0]["changes"][0]["value"]["metadata"]["phone_number_id"] = "999"
    response = await post_whatsapp(router, payload)
    assert response.status == 200 and "not this account's" in (await response.json())["ignored"]


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (b'{"object": ', "body is not valid JSON"),
        (b'"text"', "body must be a JSON object"),
        (b'{"object": "whatsapp_business_account"}', "$.entry is missing"),
    ],
)
async def test_a_malformed_payload_is_a_400_with_the_reason(router: TestClient, body: bytes, detail: str) -> None:
    response = await post_whatsapp(router, body)
    assert response.status == 400 and (await response.json())["detail"].startswith(detail)
    assert await inbound_messages(router) == []


async def test_a_broken_message_is_left_out_and_the_valid_one_beside_it_recorded(
    router: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    """A shape pywa's tests carry: type ``interactive`` with no ``interactive`` object and an
    ``errors`` list. Refusing the whole body lost the valid message beside it, and Meta resent it."""
    payload = copy.deepcopy(fixture("whatsapp", "text"))
    value = payload["entry"][0]["changes"][0]["value"]
    broken = {
        "from": value["messages"][0]["from"],
        "id": "wamid.BROKEN",
        "timestamp": value["messages"][0]["timestamp"],
        "type": "interactive",
        "errors": [{"code": 131051, "title": "Message type unknown"}],
    }
    value["messages"].insert(0, broken)
    payload["entry"].append(
        {"id": "2", "changes": [{"field": "messages", "value": {"messages": [{"id": "x", "from": "1"}]}}]}
    )
    with caplog.at_level(logging.WARNING, logger="omnirouter.handlers.whatsapp"):
        response = await post_whatsapp(router, payload)
    assert response.status == 200 and (await response.json())["recorded"] == 1
    assert [m["external_id"] for m in await inbound_messages(router)] == [value["messages"][1]["id"]]
    assert sum(r.getMessage() == "whatsapp.entry_malformed" for r in caplog.records) == 2
    only_broken = {"object": "whatsapp_business_account", "entry": [payload["entry"][1]]}
    answer = await post_whatsapp(router, only_broken)  # nothing valid: acknowledged, not resent for days
    assert answer.status == 200 and "type is missing" in (await answer.json())["ignored"]


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (
            {
                "type": "order",
                "order": {
                    "catalog_id": "C1",
                    "text": "by Friday",
                    "product_items": [{"product_retailer_id": "SKU-7", "quantity": 2}],
                },
            },
            "sent an order: 2 × SKU-7 — by Friday",
        ),
        (
            {
                "type": "interactive",
                "interactive": {"type": "nfm_reply", "nfm_reply": {"name": "survey", "response_json": '{"size": "M"}'}},
            },
            'sent a form: survey {"size": "M"}',
        ),
        (
            {"type": "unsupported", "errors": [{"code": 131051, "title": "Message type unknown"}]},
            "sent a message of a type not shown here (unsupported: Message type unknown)",
        ),
    ],
)
async def test_orders_flow_replies_and_unknown_types_are_kept_for_the_agent(
    router: TestClient, content: dict[str, Any], says: str
) -> None:
    """Orders, flow replies and what WhatsApp does not pass on were acknowledged and dropped."""
    payload = copy.deepcopy(fixture("whatsapp", "text"))
    message = payload["entry"][0]["changes"][0]["value"]["messages"][0]
    del message["text"]
    message.update(content)
    assert (await post_whatsapp(router, payload)).status == 200
    [stored] = await inbound_messages(router)
    assert stored["text"] == says
