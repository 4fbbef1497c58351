"""The web chat visitor's forms on the socket: the website widget's pre-chat form (who the visitor
is, consent to the privacy notice) and the offline form that becomes a queued conversation."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from bot.handlers.webchat.embedding import identity_secret_name, user_hash
from bot.handlers.webchat.visitor_forms import email_address, phone_number
from bot.keys import QUEUE, STORE
from bot.web.keys import SERVICES
from conversations.models import utcnow
from conversations.thread_models import ThreadStatus
from conversations.traffic import Identity
from tests import factories
from tests.handlers.conftest import email_settings
from tests.handlers.webchat.test_webchat import frames_until
from tests.mailservers import SmtpSink
from tests.router.test_inbound import wait_for

PRIVACY = "https://shop.example/privacy"
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


async def ask_prechat(client: TestClient, **form: Any) -> None:
    prechat = {"enabled": True, "name": True, "email": True, "phone": False, "consent": True, "privacy_url": PRIVACY}
    await client.server.app[STORE].accounts.set_account_fields("default", widget={"prechat": {**prechat, **form}})


async def closed_today(client: TestClient) -> str:
    """Business hours on another day of the week only: the account is out of hours now."""
    tomorrow = DAYS[(utcnow() + timedelta(days=1)).weekday()]
    await client.server.app[QUEUE].set_routing("default", business_hours=f"{tomorrow} 09:00-17:00", timezone="UTC")
    return f"{tomorrow} 09:00-17:00"


async def answer(ws: aiohttp.ClientWebSocketResponse, frame: dict[str, Any]) -> dict[str, Any]:
    await ws.send_json(frame)
    got: dict[str, Any] = await ws.receive_json()
    return got


async def test_the_pre_chat_form_names_the_contact_keeps_consent_and_is_not_asked_again(client: TestClient) -> None:
    async with client.ws_connect("/webchat/ws") as ws:
        assert (await ws.receive_json())["prechat"] is False  # the account asks nothing by default
    await ask_prechat(client)
    store = client.server.app[STORE]
    async with client.ws_connect("/webchat/ws") as ws:
        welcome = await ws.receive_json()
        assert welcome["prechat"] is True
        good = {"type": "prechat", "name": "Dana", "email": "Dana@Example.com", "consent": True}
        wrong = await answer(ws, {**good, "email": "dana(at)example"})
        assert wrong == {"type": "form_error", "form": "prechat", "field": "email", "code": "bad_email"}
        wrong = await answer(ws, {**good, "name": "  "})
        assert (wrong["field"], wrong["code"]) == ("name", "name_missing")
        wrong = await answer(ws, {**good, "consent": "yes"})
        assert (wrong["field"], wrong["code"]) == ("consent", "consent_missing")
        assert await factories.contact_count(store) == 0  # nothing kept of a form refused
        assert await answer(ws, good) == {"type": "prechat_done", "name": "Dana"}

    visitor = welcome["visitor_token"].split(".")[0]
    contact_id = await store.contacts.contact_by_identity("default", "webchat", visitor)
    assert contact_id is not None
    contact = await store.contacts.get_contact(contact_id)
    assert contact is not None and contact.name == "Dana" and contact.prechat is not None
    assert Identity("email", "dana@example.com") in contact.identities
    assert await store.contacts.contact_by_identity("default", "email", "dana@example.com") == contact_id
    found = await store.contacts.search_contacts("default", "dana@example.com")  # agents find her by it
    assert [c.id for c in found] == [contact_id]
    consent = contact.prechat["consent"]
    assert consent["privacy_url"] == PRIVACY and consent["given_at"].startswith(str(utcnow().year))

    async with client.ws_connect("/webchat/ws", params={"token": welcome["visitor_token"]}) as ws:
        assert (await ws.receive_json())["prechat"] is False  # a returning visitor is not asked again


async def test_an_address_another_contact_has_is_not_linked_and_a_vouched_user_is_not_asked(client: TestClient) -> None:
    store = client.server.app[STORE]
    await factories.record(store, factories.inbound(account="default", channel="email", address="owner@example.com"))
    owner = await store.contacts.contact_by_identity("default", "email", "owner@example.com")
    await ask_prechat(client, name=False, email=True, phone=True, consent=False)
    async with client.ws_connect("/webchat/ws") as ws:
        await ws.receive_json()
        wrong = await answer(ws, {"type": "prechat"})
        assert (wrong["field"], wrong["code"]) == ("email", "email_or_phone")
        wrong = await answer(ws, {"type": "prechat", "phone": "2000 0000"})
        assert (wrong["field"], wrong["code"]) == ("phone", "bad_phone")
        done = await answer(ws, {"type": "prechat", "email": "owner@example.com", "phone": "+371 2000-0000"})
        assert done["type"] == "prechat_done"
    assert await store.contacts.contact_by_identity("default", "email", "owner@example.com") == owner  # not taken
    assert await store.contacts.contact_by_identity("default", "phone", "+37120000000") not in (None, owner)

    await store.secrets.replace_sealed_secret(identity_secret_name("default"), "s3cret")
    async with client.ws_connect("/webchat/ws") as ws:
        await ws.receive_json()
        identified = await answer(ws, {"type": "identify", "user_id": "u-1", "user_hash": user_hash("s3cret", "u-1")})
    async with client.ws_connect("/webchat/ws", params={"token": identified["visitor_token"]}) as ws:
        assert (await ws.receive_json())["prechat"] is False  # the site vouched for them


@pytest.mark.parametrize(
    ("typed", "kept"),
    [("+371 2000 0000", "+37120000000"), ("0037120000000", "+37120000000"), ("(+1) 202-555-0100", "+12025550100")],
)
def test_a_phone_number_is_kept_in_e164(typed: str, kept: str) -> None:
    assert phone_number(typed) == kept


@pytest.mark.parametrize("typed", ["20000000", "+0 123 4567", "+371 abc", "", "+3712000000000000000"])
def test_a_phone_number_without_its_country_code_is_refused(typed: str) -> None:
    assert phone_number(typed) is None


def test_e_mail_addresses() -> None:
    assert email_address(" A.B+c@Shop.example ") == "a.b+c@shop.example"
    for wrong in ("a@b", "a b@c.lv", "<a@b.lv>", "@b.lv", "a@-b.lv" * 40):
        assert email_address(wrong) is None


async def test_the_offline_form_becomes_a_queued_conversation_with_the_e_mail(client: TestClient) -> None:
    await closed_today(client)
    store = client.server.app[STORE]
    async with client.ws_connect("/webchat/ws") as ws:
        await ws.receive_json()
        form = {"type": "offline", "id": "off-1", "name": "Ilze", "email": "ilze@example.lv", "text": "Call me back"}
        wrong = await answer(ws, {**form, "email": "ilze"})
        assert (wrong["form"], wrong["field"], wrong["code"]) == ("offline", "email", "bad_email")
        wrong = await answer(ws, {**form, "text": " "})
        assert (wrong["field"], wrong["code"]) == ("text", "text_missing")
        await ws.send_json(form)
        *before, sent = await frames_until(ws, "offline_sent")  # answered once stored
        assert sent["email"] == "ilze@example.lv"
        if not before:  # the out-of-hours reply comes when the queue has taken it
            before = await frames_until(ws, "message")
        assert [f["sender"] for f in before] == ["system"]  # the out-of-hours reply, nothing from the bot
        await ws.send_json(form)  # the same form sent twice (a reconnect): one message
        assert (await frames_until(ws, "offline_sent"))[-1]["thread_id"] == sent["thread_id"]
    (thread,) = await factories.threads(store)
    assert thread.status == ThreadStatus.QUEUED and thread.escalation_reason == "offline_form"
    (message,) = await factories.messages(store, direction="in")
    assert message.text == "Call me back" and message.meta["reply_by_email"] == "ilze@example.lv"
    contact = await store.contacts.get_contact(thread.contact_id)
    assert contact is not None and contact.name == "Ilze"
    assert await store.contacts.contact_by_identity("default", "email", "ilze@example.lv") == thread.contact_id
    outs = await factories.messages(store, direction="out")
    assert all(m.sender.get("kind") != "bot" for m in outs)  # the bot never answers it


async def test_the_widget_config_tells_the_chat_its_form_and_when_it_is_out_of_hours(client: TestClient) -> None:
    body = await (await client.get("/widget/config")).json()
    assert body["prechat"] is None and body["offline"] is None
    await ask_prechat(client)
    hours = await closed_today(client)
    body = await (await client.get("/widget/config")).json()
    assert body["prechat"] == {"fields": ["name", "email"], "consent": True, "privacy_url": PRIVACY}
    assert body["offline"] == {"hours": hours, "timezone": "UTC"}


async def test_the_frames_still_refuse_what_they_do_not_know(client: TestClient) -> None:
    async with client.ws_connect("/webchat/ws") as ws:
        await ws.receive_json()
        await ws.send_json({"type": "prechat_done"})
        (refused,) = await frames_until(ws, "error")
        assert refused["code"] == "bad_frame"


async def test_an_agents_answer_to_the_offline_form_goes_to_the_visitors_e_mail(
    embedded: Any, db_name: str, smtp_sink: SmtpSink, start_client: Any
) -> None:
    """The form promises an answer by e-mail: the agent answers in the console as usual, and the
    reply goes out through the e-mail channel to the address given (counted at a local SMTP server)."""
    client = await start_client(email_settings(embedded.uri, db_name, dovecot=None, user="unused", sink=smtp_sink))
    await closed_today(client)
    app, store = client.server.app, client.server.app[STORE]
    async with client.ws_connect("/webchat/ws") as ws:
        await ws.receive_json()
        form = {"type": "offline", "id": "off-1", "name": "Ilze", "email": "ilze@example.lv", "text": "Call me back"}
        await ws.send_json(form)
        await frames_until(ws, "offline_sent")
    (thread,) = await factories.threads(store)
    agent = await factories.agent(store, "ava berzina", online=True)
    await app[QUEUE].take(agent, thread.id)
    reply = await app[SERVICES].replies.answer(thread.id, agent, "We will call you at ten.", "n1")
    assert reply.channel == "email" and reply.thread_id == thread.id  # in the same conversation

    async def mailed() -> bool:
        return len(smtp_sink.received) == 1

    await wait_for(mailed, timeout=15)
    recipients, mail, _ = smtp_sink.received[0]
    assert recipients == ["ilze@example.lv"]
    assert "We will call you at ten." in mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]
