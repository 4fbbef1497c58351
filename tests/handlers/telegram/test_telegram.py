"""Telegram webhooks: one recorded update per event kind, and every way a delivery can go wrong."""

from __future__ import annotations

import copy
import logging
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from bot.keys import STORE
from tests.fakes.telegram_api import FakeBotAPI
from tests.handlers import channels
from tests.handlers.channels import fixture, post_telegram
from tests.router.test_inbound import wait_for


async def inbound_messages(client: TestClient) -> list[dict[str, Any]]:
    return await channels.inbound_messages(client, "telegram", "created_at")


async def deliver(client: TestClient, name: str) -> dict[str, Any]:
    return await channels.deliver(client, "telegram", name)


async def edits(client: TestClient, message: dict[str, Any]) -> list[dict[str, Any]]:
    return await client.server.app[STORE].messages.message_edits(message["_id"])


async def test_a_text_message_lands_in_a_thread_of_the_sender(router: TestClient) -> None:
    assert await deliver(router, "text") == {"ok": True, "recorded": 1, "duplicates": 0, "statuses": 0}
    [message] = await inbound_messages(router)
    assert message["external_id"] == "5512345678:101" and message["text"] == "Hello, where is my order 4471?"
    assert message["sender"] == {"kind": "customer", "address": "5512345678", "name": "Anna Bērziņa"}
    assert message["meta"] == {"username": "anna_b", "language": "lv", "update_id": 730001001}
    thread = await router.server.app[STORE].threads.get_thread(message["thread_id"])
    assert thread.channel == "telegram" and thread.address == "5512345678"
    assert thread.wa_window_ends_at is None  # no service window on Telegram


async def test_a_photo_keeps_its_caption_and_the_largest_size(router: TestClient) -> None:
    await deliver(router, "photo_caption")
    [message] = await inbound_messages(router)
    assert message["text"] == "The parcel arrived damaged"
    assert message["attachments"] == [
        {"kind": "image", "mime_type": "image/jpeg", "size": 81112, "provider_ref": "AgACAgIAAxkBAAMGZlarge"}
    ]


async def test_a_document_is_attachment_metadata(router: TestClient) -> None:
    await deliver(router, "document")
    [message] = await inbound_messages(router)
    assert message["text"] == "Invoice attached"
    assert message["attachments"] == [
        {
            "kind": "document",
            "name": "invoice-4471.pdf",
            "mime_type": "application/pdf",
            "size": 48213,
            "provider_ref": "BQACAgIAAxkBAAMHZinvoice",
        }
    ]


async def test_a_voice_note_is_an_audio_attachment(router: TestClient) -> None:
    await deliver(router, "voice")
    [message] = await inbound_messages(router)
    assert message["text"] == ""
    assert message["attachments"] == [
        {"kind": "audio", "mime_type": "audio/ogg", "size": 9876, "provider_ref": "AwACAgIAAxkBAAMIZvoice"}
    ]


async def test_a_location_is_a_geo_attachment(router: TestClient) -> None:
    await deliver(router, "location")
    [message] = await inbound_messages(router)
    assert message["attachments"] == [{"kind": "location", "url": "geo:56.946285,24.105078"}]


async def test_the_senders_own_contact_joins_their_phone_number(router: TestClient) -> None:
    await deliver(router, "text")
    await deliver(router, "contact_own")
    [first, shared] = await inbound_messages(router)
    assert shared["attachments"] == [{"kind": "contact", "name": "Anna Bērziņa", "provider_ref": "+37120001234"}]
    owner = await router.server.app[STORE].contacts.contact_by_identity("default", "phone", "+37120001234")
    assert owner == first["contact_id"] == shared["contact_id"]


async def test_someone_elses_contact_card_does_not_join_the_sender(router: TestClient) -> None:
    await deliver(router, "contact_other")
    [message] = await inbound_messages(router)
    assert message["attachments"] == [{"kind": "contact", "name": "Jānis", "provider_ref": "37129998888"}]
    store = router.server.app[STORE]
    contact = await store.contacts.get_contact(message["contact_id"])
    assert contact is not None and [i.channel for i in contact.identities] == ["telegram"]
    assert [i.channel for i in await store.contacts.identities_of("default", contact.id)] == ["telegram"]
    for number in ("+37129998888", "37129998888"):  # the card's number joined nobody
        assert await store.contacts.contact_by_identity("default", "phone", number) is None


async def test_an_edit_changes_the_original_and_keeps_what_it_said(router: TestClient) -> None:
    await deliver(router, "text")
    assert (await deliver(router, "edited_message"))["edits"] == 1
    [message] = await inbound_messages(router)
    assert message["text"] == "Hello, where is my order 4472?"
    assert [e["text"] for e in await edits(router, message)] == ["Hello, where is my order 4471?"]
    await deliver(router, "edited_message")  # redelivered: nothing changes
    older = copy.deepcopy(fixture("telegram", "edited_message"))
    older["update_id"] += 1
    older["edited_message"].update(text="an older edit arriving late", edit_date=1764072030)
    await post_telegram(router, older)
    [message] = await inbound_messages(router)
    assert message["text"] == "Hello, where is my order 4472?" and len(await edits(router, message)) == 1


async def test_an_edit_of_a_message_never_seen_is_recorded_as_that_message(router: TestClient) -> None:
    assert (await deliver(router, "edited_message"))["recorded"] == 1
    [message] = await inbound_messages(router)
    assert message["external_id"] == "5512345678:101" and message["text"].endswith("4472?")
    await deliver(router, "text")  # the original arriving after its edit is a duplicate
    assert len(await inbound_messages(router)) == 1
    await deliver(router, "edited_message")  # the edit delivered again: no "earlier version" of itself
    [message] = await inbound_messages(router)
    assert message["text"].endswith("4472?") and await edits(router, message) == []


async def test_start_with_a_deep_link_payload(router: TestClient) -> None:
    await deliver(router, "start_deep_link")
    [message] = await inbound_messages(router)
    assert message["text"] == "/start promo-black-friday" and message["meta"]["start_payload"] == "promo-black-friday"


async def test_an_inline_button_press_is_a_message_and_is_answered(router: TestClient, bot_api: FakeBotAPI) -> None:
    await deliver(router, "callback_query")
    [message] = await inbound_messages(router)
    assert message["text"] == "No" and message["external_id"] == "cb:4382bfdwdsb323b2d9"
    assert message["meta"]["pressed_on"] == "5512345678:1000"

    async def answered() -> bool:
        return bot_api.sent("answerCallbackQuery") == [{"callback_query_id": "4382bfdwdsb323b2d9"}]

    await wait_for(answered)


async def test_a_redelivered_update_is_acknowledged_and_stored_once(router: TestClient) -> None:
    await deliver(router, "text")
    assert await deliver(router, "text") == {"ok": True, "recorded": 0, "duplicates": 1, "statuses": 0}
    assert len(await inbound_messages(router)) == 1


@pytest.mark.parametrize("secret", [None, "", "wrong-secret", "tg-webhook-secret_"])
async def test_a_missing_or_wrong_secret_is_refused_and_nothing_stored(router: TestClient, secret: str | None) -> None:
    response = await post_telegram(router, fixture("telegram", "text"), secret=secret)
    assert response.status == 401
    assert (await response.json())["error"] == "unauthorized"
    assert await inbound_messages(router) == []


@pytest.mark.parametrize("name", ["channel_post", "group_message"])
async def test_updates_we_do_not_handle_are_acknowledged_and_logged(
    router: TestClient, name: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="omnirouter")
    response = await post_telegram(router, fixture("telegram", name))
    assert response.status == 200 and "not handled" in (await response.json())["ignored"]
    assert any(r.getMessage() == "webhook.unsupported" for r in caplog.records)
    assert await inbound_messages(router) == []


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (b"{not json", "body is not valid JSON"),
        (b"[1, 2]", "body must be a JSON object"),
        (b'{"message": {"text": "hi"}}', "$.update_id is missing"),
        (
            b'{"update_id": 1, "message": {"message_id": 1, "date": 1, "chat": "x"}}',
            "$.message.chat: expected an object",
        ),
    ],
)
async def test_a_malformed_update_is_a_400_with_the_reason(router: TestClient, body: bytes, detail: str) -> None:
    response = await post_telegram(router, body)
    assert response.status == 400
    assert (await response.json())["detail"].startswith(detail)
    assert await inbound_messages(router) == []


async def test_an_unknown_account_path_is_404(router: TestClient) -> None:
    response = await post_telegram(router, fixture("telegram", "text"), path="/webhooks/telegram/nobody")
    assert response.status == 404 and (await response.json())["error"] == "unknown_account"


@pytest.mark.parametrize(
    ("content", "says", "kind"),
    [
        ({"web_app_data": {"data": "size=42", "button_text": "Pick a size"}}, "size=42", "web_app_data"),
        (
            {"users_shared": {"request_id": 1, "users": [{"user_id": 7, "first_name": "Anna"}]}},
            "shared users: Anna",
            "users_shared",
        ),
        (
            {"chat_shared": {"request_id": 2, "chat_id": -100, "title": "Shop fans"}},
            "shared a chat: Shop fans",
            "chat_shared",
        ),
        (
            {"poll": {"id": "p1", "question": "Colour?", "options": [{"text": "red"}, {"text": "blue"}]}},
            "sent a poll: Colour? (red / blue)",
            "poll",
        ),
        ({"dice": {"emoji": "🎲", "value": 4}}, "sent 🎲 4", "dice"),
        ({"story": {"chat": {"id": 1, "type": "private"}, "id": 3}}, "shared a story", "story"),
    ],
)
async def test_what_a_customer_does_besides_writing_is_kept_for_the_agent(
    router: TestClient, content: dict[str, Any], says: str, kind: str
) -> None:
    """Web app data, shared users and chats, polls, dice and stories were acknowledged and dropped."""
    update = copy.deepcopy(fixture("telegram", "text"))
    del update["message"]["text"]
    update["message"].update(content)
    assert (await post_telegram(router, update)).status == 200
    [message] = await inbound_messages(router)
    assert message["text"] == says and message["meta"]["kind"] == kind
