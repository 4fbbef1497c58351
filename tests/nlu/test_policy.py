"""The dialogue policy end to end: a customer writes in the web chat, the real engine parses,
the dispatcher answers, escalates or asks back, and every decision is stored with its parse."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from bot.keys import STORE
from bot.nlu.responses import load_responses
from conversations.embedded import EmbeddedMongo
from conversations.repositories import Repositories
from tests.conftest import make_settings
from tests.fakes.rasa import FakeRasa
from tests.nlu.conftest import ROOT, install

Start = Callable[..., Awaitable[TestClient]]


@pytest.fixture
async def chat(
    embedded: EmbeddedMongo, db_name: str, store: Repositories, starter_blob: bytes, start_client: Any
) -> Start:
    """Start the router with the starter model active; keyword arguments override [nlu]."""

    async def start(**nlu: Any) -> TestClient:
        await install(store, starter_blob)
        return await start_client(make_settings(embedded.uri, db_name, nlu=nlu))

    return start


@pytest.fixture
async def rasa() -> AsyncIterator[FakeRasa]:
    fake = FakeRasa()
    await fake.server.start_server()
    yield fake
    await fake.server.close()


async def say(
    ws: aiohttp.ClientWebSocketResponse, client_id: str, text: str
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Send one message; the decision and the replies it names, as the browser gets them."""
    await ws.send_json({"type": "message", "id": client_id, "text": text})
    decision: dict[str, Any] | None = None
    replies: dict[str, dict[str, Any]] = {}
    async with asyncio.timeout(10):
        while decision is None or set(decision["replies"]) - replies.keys():
            frame = await ws.receive_json()
            if frame["type"] == "decision" and frame["id"] == client_id:
                decision = frame
            elif frame["type"] == "message" and frame["direction"] == "out":
                replies[frame["message_id"]] = frame
    return decision, [replies[r] for r in decision["replies"]]


async def stored(client: TestClient, message_id: str) -> dict[str, Any]:
    message = await client.server.app[STORE].messages.get_message(message_id)
    assert message is not None
    return message.to_doc()


async def thread_of(client: TestClient, decision: dict[str, Any]) -> dict[str, Any]:
    thread = await client.server.app[STORE].threads.get_thread(decision["thread_id"])
    assert thread is not None
    return thread.to_doc()


async def test_a_routine_question_is_answered_in_the_customers_language(chat: Start) -> None:
    client = await chat()
    async with client.ws_connect("/webchat/ws") as ws:
        await ws.receive_json()
        decision, [reply] = await say(ws, "q1", "what are your opening hours?")
        assert (decision["action"], decision["reason"]) == ("answered", "opening_hours")
        assert reply["text"].startswith("We are open Monday to Friday") and reply["sender"] == "bot"
        decision, [reply] = await say(ws, "q2", "Cikos jūs strādājat sestdienā?")
        assert decision["reason"] == "opening_hours" and reply["text"].startswith("Strādājam")
        decision, [reply] = await say(ws, "q3", "где мой заказ A-55512?")
        assert decision["reason"] == "form:order_status_form:completed"  # the number came with the question
        assert "A-55512" in reply["text"] and "заказ" in reply["text"]
    message = await stored(client, decision["message_id"])
    assert message["decision"]["action"] == "answered"
    assert message["nlu"]["intent"] == "order_status" and message["nlu"]["language"] == "ru"
    assert message["nlu"]["entities"][0]["value"] == "A-55512" and message["nlu"]["model_version"] == "starter-1"
    assert (await thread_of(client, decision))["status"] == "bot"


async def test_asking_for_a_human_queues_the_thread_with_the_reason(chat: Start) -> None:
    client = await chat()
    async with client.ws_connect("/webchat/ws") as ws:
        await ws.receive_json()
        await say(ws, "h0", "hello")
        decision, [notice] = await say(ws, "h1", "I want to talk to a real person")
    assert (decision["action"], decision["reason"]) == ("queued", "intent:talk_to_human")
    assert notice["text"].startswith("Of course. A member of our team")
    thread = await thread_of(client, decision)
    assert thread["status"] == "queued" and thread["escalation_reason"] == "intent:talk_to_human"
    assert (await stored(client, decision["message_id"]))["nlu"]["intent"] == "talk_to_human"


async def test_an_escalate_intent_and_low_confidence_twice_go_to_a_human(chat: Start) -> None:
    client = await chat()
    async with client.ws_connect("/webchat/ws") as ws:
        await ws.receive_json()
        decision, [reply] = await say(ws, "c1", "the parcel arrived broken, this is unacceptable")
    assert decision["reason"] == "intent:complaint" and reply["text"].startswith("I am sorry to hear that")

    async with client.ws_connect("/webchat/ws") as ws:  # another visitor
        await ws.receive_json()
        first, [fallback] = await say(ws, "o1", "what's the weather in Paris tomorrow?")
        assert (first["action"], first["reason"]) == ("answered", "fallback")
        assert fallback["text"].startswith("Sorry, I did not quite get that")
        assert (await stored(client, first["message_id"]))["nlu"]["intent"] == "out_of_scope"
        second, [notice] = await say(ws, "o2", "who will win the next football world cup?")
    assert (second["action"], second["reason"]) == ("queued", "low_confidence")
    assert (await thread_of(client, second))["escalation_reason"] == "low_confidence"
    assert notice["text"].startswith("Thanks! A member of our team")


async def test_an_ambiguous_message_gets_a_clarifying_question_with_buttons(chat: Start) -> None:
    client = await chat(ambiguity_margin=0.99)  # anything short of certainty is a close call
    async with client.ws_connect("/webchat/ws") as ws:
        await ws.receive_json()
        decision, [question] = await say(ws, "a1", "how much does delivery cost?")
        assert (decision["action"], decision["reason"]) == ("answered", "clarify")
        assert question["text"] == "Which of these do you mean?"
        assert "Delivery" in question["options"] and len(question["options"]) >= 2
        decision, [answer] = await say(ws, "a2", "Delivery")  # the button sends its label
        assert (decision["action"], decision["reason"]) == ("answered", "delivery")
        assert answer["text"].startswith("We deliver across the Baltics")
        message = await stored(client, decision["message_id"])
        assert message["nlu"]["engine"] == "clarified" and message["nlu"]["intent"] == "delivery"
        # without buttons the options are a numbered list: the number answers too
        decision, [question] = await say(ws, "a3", "can I pay when it is delivered?")
        assert decision["reason"] == "clarify"
        decision, _ = await say(ws, "a4", "2")
    second = (await stored(client, question["message_id"]))["meta"]["options"][1]
    titles = load_responses(ROOT / "config" / "responses.yml").titles
    assert decision["reason"] == next(intent for intent, t in titles.items() if t["en"] == second)
    page = await client.get("/static/chat.js")
    assert "msg__options" in await page.text()  # the page renders options as buttons


async def test_a_remote_rasa_server_answers_or_the_customer_gets_a_human(
    embedded: EmbeddedMongo, db_name: str, start_client: Any, rasa: FakeRasa
) -> None:
    rasa.intents["hello"] = ("greet", 0.97)
    settings = make_settings(
        embedded.uri, db_name, nlu={"engine": "rasa", "rasa_url": rasa.url, "rasa_timeout": 0.3, "rasa_token": "s3cret"}
    )
    client = await start_client(settings)
    async with client.ws_connect("/webchat/ws") as ws:
        await ws.receive_json()
        decision, [reply] = await say(ws, "r1", "hello")
        assert (decision["action"], decision["reason"]) == ("answered", "greet")
        assert reply["text"] in ("Hello! How can I help you today?", "Hi! What can I do for you?")
        assert rasa.requests[-1] == {"body": {"text": "hello"}, "token": "s3cret"}
        rasa.delay = 1.0  # slower than nlu.rasa_timeout
        decision, _ = await say(ws, "r2", "hello")
    assert (decision["action"], decision["reason"]) == ("queued", "nlu_unavailable")
    assert (await stored(client, decision["message_id"])).get("nlu") is None
