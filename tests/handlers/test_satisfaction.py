"""The rating question after a resolved conversation, on each channel through its real adapter
(and the fake provider), and the customer's answer recorded as the rating, not a new question."""

from __future__ import annotations

import time
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from bot.keys import STORE
from bot.router.satisfaction import rating_of
from bot.web.keys import SERVICES
from conversations.satisfaction import SatisfactionAsk
from conversations.thread_models import Thread, ThreadStatus
from tests import factories
from tests.fakes.graph_api import FakeGraphAPI
from tests.fakes.telegram_api import FakeBotAPI
from tests.fakes.twilio import FakeTwilio, post_webhook
from tests.fakes.twilio import fixture as sms_fixture
from tests.handlers.channels import fixture, post_telegram, post_whatsapp
from tests.handlers.sms.test_sms import CUSTOMER, sms_app, twilio  # noqa: F401 (fixtures)
from tests.handlers.webchat.test_webchat import frames_until
from tests.router.test_inbound import wait_for


async def ask_on(client: TestClient, account: str = "default", **settings: Any) -> None:
    """Turn the question on for ``account``."""
    await client.server.app[STORE].accounts.set_account_fields(account, satisfaction={"enabled": True, **settings})


async def resolve_only_thread(client: TestClient, channel: str) -> Thread:
    """An agent takes the customer's one conversation on ``channel`` and resolves it."""
    store = client.server.app[STORE]

    async def queued() -> bool:
        return any(t.status == ThreadStatus.QUEUED for t in await factories.threads(store, channel=channel))

    await wait_for(queued)
    [thread] = await factories.threads(store, channel=channel)
    agent = await factories.agent(store, f"agent-{channel}", online=True)
    threads = client.server.app[SERVICES].threads
    await threads.take(agent, thread.id)
    await threads.resolve(thread.id, agent)
    return thread


async def asks(client: TestClient, thread: Thread) -> list[SatisfactionAsk]:
    return await client.server.app[STORE].satisfaction.of_threads(thread.account_id, [thread.id])


async def rated(client: TestClient, thread: Thread, rating: int) -> bool:
    return [a.rating for a in await asks(client, thread)] == [rating]


async def test_web_chat_asks_with_buttons_and_a_tap_rates_the_conversation(client: TestClient) -> None:
    await ask_on(client)
    store = client.server.app[STORE]
    async with client.ws_connect("/webchat/ws", params={"name": "Alice"}) as ws:
        await ws.receive_json()
        await ws.send_json({"type": "message", "id": "c1", "text": "where is my order?"})
        await frames_until(ws, "decision")
        thread = await resolve_only_thread(client, "webchat")

        while (frame := await ws.receive_json())["type"] != "message" or not frame["options"]:
            pass
        assert frame["options"] == ["1", "2", "3", "4", "5"] and "1 (poor) to 5" in frame["text"]
        await ws.send_json({"type": "message", "id": "c2", "text": "4"})
        frames = await frames_until(ws, "decision")
        assert frames[-1]["reason"] == "satisfaction_rating"
        await wait_for(lambda: rated(client, thread, 4))
        if not [f for f in frames if f["type"] == "message"]:  # the thanks may come after the decision
            frames = await frames_until(ws, "message")
        thanks = [f for f in frames if f["type"] == "message"]
        assert thanks[-1]["text"].startswith("Thank you for your rating")

        await ws.send_json({"type": "message", "id": "c3", "text": "Quick and friendly, thanks"})
        assert (await frames_until(ws, "decision"))[-1]["reason"] == "satisfaction_comment"
        [ask] = await asks(client, thread)
        assert ask.comment == "Quick and friendly, thanks" and ask.channel == "webchat"
        assert ask.agent_id is not None

        # the conversation stays resolved, no new one opened; the next message is a new question
        assert [t.id for t in await factories.threads(store, channel="webchat")] == [thread.id]
        assert (await store.threads.get_thread(thread.id)).status == ThreadStatus.RESOLVED  # type: ignore[union-attr]
        await ws.send_json({"type": "message", "id": "c4", "text": "one more thing"})
        assert (await frames_until(ws, "decision"))[-1]["action"] in ("queued", "waiting", "to_agent")


async def test_an_account_that_does_not_ask_sends_nothing_after_resolving(client: TestClient) -> None:
    async with client.ws_connect("/webchat/ws") as ws:
        await ws.receive_json()
        await ws.send_json({"type": "message", "id": "c1", "text": "hello"})
        await frames_until(ws, "decision")
        thread = await resolve_only_thread(client, "webchat")
        await ws.send_json({"type": "message", "id": "c2", "text": "5"})
        assert (await frames_until(ws, "decision"))[-1]["reason"] != "satisfaction_rating"
    assert await asks(client, thread) == []


async def test_a_contact_is_not_asked_again_within_the_quiet_period(client: TestClient) -> None:
    await ask_on(client, quiet_days=30)
    store = client.server.app[STORE]
    async with client.ws_connect("/webchat/ws") as ws:
        await ws.receive_json()
        await ws.send_json({"type": "message", "id": "c1", "text": "hello"})
        await frames_until(ws, "decision")
        first = await resolve_only_thread(client, "webchat")
        await store.queue.reopen(first, None, first.opened_at)  # back again, and resolved again
        agent = await factories.agent(store, "second", online=True)
        await client.server.app[SERVICES].threads.take(agent, first.id)
        await client.server.app[SERVICES].threads.resolve(first.id, agent)
    assert len(await asks(client, first)) == 1


async def test_telegram_asks_with_an_inline_keyboard_and_the_press_rates(
    router: TestClient, bot_api: FakeBotAPI
) -> None:
    await ask_on(router)
    assert (await post_telegram(router, fixture("telegram", "text"))).status == 200
    thread = await resolve_only_thread(router, "telegram")

    async def asked() -> bool:
        return any(p.get("reply_markup", {}).get("inline_keyboard") for p in bot_api.sent())

    await wait_for(asked)
    question = next(p for p in bot_api.sent() if p.get("reply_markup", {}).get("inline_keyboard"))
    assert question["reply_markup"]["inline_keyboard"][4] == [{"text": "5", "callback_data": "5"}]
    press = fixture("telegram", "callback_query")
    press["callback_query"]["data"] = "5"
    assert (await post_telegram(router, press)).status == 200
    await wait_for(lambda: rated(router, thread, 5))

    async def answered() -> bool:
        return bool(bot_api.sent("answerCallbackQuery"))

    await wait_for(answered)
    assert len(await factories.threads(router.server.app[STORE], channel="telegram")) == 1


def whatsapp_now(name: str, text: str | None = None, message_id: str | None = None) -> dict[str, Any]:
    """A recorded WhatsApp payload sent just now (so its 24-hour window is open)."""
    payload = fixture("whatsapp", name)
    message = payload["entry"][0]["changes"][0]["value"]["messages"][0]
    message["timestamp"] = str(int(time.time()))
    if message_id:
        message["id"] = message_id
    if text is not None:
        message["interactive"]["list_reply"] = {"id": text, "title": text}
    return payload


async def test_whatsapp_asks_inside_its_window_and_a_list_choice_rates(
    router: TestClient, graph_api: FakeGraphAPI
) -> None:
    await ask_on(router)
    assert (await post_whatsapp(router, whatsapp_now("text"))).status == 200
    thread = await resolve_only_thread(router, "whatsapp")

    async def asked() -> bool:
        return any(m.get("type") == "interactive" for m in graph_api.sent())

    await wait_for(asked)
    question = next(m for m in graph_api.sent() if m.get("type") == "interactive")
    rows = question["interactive"]["action"]["sections"][0]["rows"]
    assert [r["title"] for r in rows] == ["1", "2", "3", "4", "5"]
    assert (await post_whatsapp(router, whatsapp_now("interactive_list_reply", "3", "wamid.rating"))).status == 200
    await wait_for(lambda: rated(router, thread, 3))


async def test_whatsapp_outside_its_window_is_not_asked_but_counted(
    router: TestClient, graph_api: FakeGraphAPI
) -> None:
    await ask_on(router)
    assert (await post_whatsapp(router, fixture("whatsapp", "text"))).status == 200  # a year old: window closed
    thread = await resolve_only_thread(router, "whatsapp")
    [ask] = await asks(router, thread)
    assert ask.skipped == "window_closed" and ask.rating is None
    assert not any(m.get("type") == "interactive" for m in graph_api.sent())


async def test_sms_asks_for_a_digit_and_the_reply_rates(sms_app: Any, twilio: FakeTwilio) -> None:
    client = await sms_app()
    await ask_on(client)
    assert (await post_webhook(client, "/webhooks/sms", sms_fixture("sms", "inbound_text"))).status == 200
    thread = await resolve_only_thread(client, "sms")

    async def asked() -> bool:
        return any("1 (poor) to 5" in body for body in twilio.bodies_to(CUSTOMER))

    await wait_for(asked)
    digit = sms_fixture("sms", "inbound_text", Body=" 2 ", MessageSid="SMrating0001", SmsSid="SMrating0001")
    assert (await post_webhook(client, "/webhooks/sms", digit)).status == 200
    await wait_for(lambda: rated(client, thread, 2))
    assert len(await factories.threads(client.server.app[STORE], channel="sms")) == 1
    # a digit sent again is not a second rating (the question is answered once)
    again = sms_fixture("sms", "inbound_text", Body="5", MessageSid="SMrating0002", SmsSid="SMrating0002")
    assert (await post_webhook(client, "/webhooks/sms", again)).status == 200

    async def dispatched() -> bool:
        return all(m.decision is not None for m in await factories.messages(client.server.app[STORE], direction="in"))

    await wait_for(dispatched)
    assert [a.rating for a in await asks(client, thread)] == [2]
    second = (await factories.messages(client.server.app[STORE], direction="in", external_id="SMrating0002"))[0]
    assert second.thread_id == thread.id and second.decision["reason"] == "satisfaction_repeated"  # type: ignore[index]
    assert len(await factories.threads(client.server.app[STORE], channel="sms")) == 1
    thanks = [b for b in twilio.bodies_to(CUSTOMER) if b.startswith("Thank you for your rating")]
    assert len(thanks) == 1


async def test_the_question_is_in_the_conversations_language_in_the_accounts_words(client: TestClient) -> None:
    await ask_on(client, texts={"lv": {"question": "Novērtējiet mūs no 1 līdz 5!"}})
    store = client.server.app[STORE]
    async with client.ws_connect("/webchat/ws") as ws:
        await ws.receive_json()
        await ws.send_json({"type": "message", "id": "c1", "text": "Labdien"})
        await frames_until(ws, "decision")
        [thread] = await factories.threads(store, channel="webchat")
        assert await store.threads.swap_thread_nlu_state(thread.id, 0, {"language": "lv"})  # as the bot recognised
        await resolve_only_thread(client, "webchat")
        while (frame := await ws.receive_json())["type"] != "message" or not frame["options"]:
            pass
        assert frame["text"] == "Novērtējiet mūs no 1 līdz 5!"
        await ws.send_json({"type": "message", "id": "c2", "text": "5/5"})
        frames = await frames_until(ws, "decision")
        if not [f for f in frames if f["type"] == "message"]:
            frames = await frames_until(ws, "message")
        assert [f for f in frames if f["type"] == "message"][-1]["text"].startswith("Paldies par vērtējumu!")
    [ask] = await asks(client, thread)
    assert ask.language == "lv" and ask.rating == 5


@pytest.mark.parametrize(
    ("text", "rating"),
    [
        ("4", 4),
        (" 5 ", 5),
        ("4/5", 4),
        ("5!", 5),
        ("1.", 1),
        ("0", None),
        ("6", None),
        ("45", None),
        ("4 stars please", None),
    ],
)
def test_what_counts_as_a_rating(text: str, rating: int | None) -> None:
    assert rating_of(text) == rating
