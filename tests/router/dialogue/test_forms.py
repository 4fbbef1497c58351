"""The starter bot's order-status form end to end in the web chat: the real engine parses, the
dialogue asks, reads the answer as the slot, completes the form and says what the action says."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp.test_utils import TestClient

from bot.keys import PIPELINE, STORE
from bot.services.agents import add_agent
from bot.services.contacts import erase_contact, find_contact
from conversations.agent_models import Role
from tests.actions import ActionServer
from tests.nlu.test_policy import say
from tests.router.dialogue.conftest import Start
from tests.router.test_inbound import webchat_inbound
from tests.web.console.test_console import log_in


async def state_of(client: TestClient, decision: dict[str, Any]) -> dict[str, Any]:
    return await client.server.app[STORE].threads.thread_nlu_state(decision["thread_id"])


async def test_a_bare_order_number_after_the_question_is_the_order_number_in_the_customers_language(bot: Start) -> None:
    """The issue's customer: "where is my order?", then a bare "A-10234", which the classifier
    alone calls out of scope (and Russian); it answers the form's question, in English."""
    client = await bot()
    async with client.ws_connect("/webchat/ws") as ws:
        await ws.receive_json()
        decision, [question] = await say(ws, "o1", "where is my order?")
        assert decision["reason"] == "form:order_status_form:ask:order_number"
        assert question["text"].startswith("Please send me your order number")
        decision, [answer] = await say(ws, "o2", "A-10234")
    assert decision["reason"] == "form:order_status_form:completed"
    assert answer["text"].startswith("Thanks! I have noted order A-10234")  # no action server: the offline text
    state = await state_of(client, decision)
    assert state["language"] == "en" and state["slots"] == {"order_number": "A-10234"} and state["form"] is None


async def test_the_order_status_comes_from_the_action_server_in_each_language(
    bot: Start, action_server: ActionServer
) -> None:
    client = await bot(action_endpoint=action_server.url)
    expected = {
        "en": ("where is my order?", "Please send", "Order A-10234 left our warehouse on 2026-11-28"),
        "lv": ("kur ir mans pasūtījums?", "Lūdzu, atsūtiet", "Pasūtījums A-10234 izsūtīts 2026-11-28"),
        "ru": ("где мой заказ?", "Пришлите, пожалуйста", "Заказ A-10234 отправлен 2026-11-28"),
    }
    for language, (ask, question_start, status) in expected.items():
        async with client.ws_connect("/webchat/ws") as ws:  # a new visitor each time
            await ws.receive_json()
            _, [question] = await say(ws, f"{language}1", ask)
            assert question["text"].startswith(question_start), language
            decision, [answer] = await say(ws, f"{language}2", "a-10234")
        assert decision["reason"] == "form:order_status_form:completed"
        assert answer["text"].startswith(status), (language, answer["text"])
        state = await state_of(client, decision)
        assert state["language"] == language and state["slots"]["order_status"] == "shipped"
        assert state["tried"][-1] == "action:action_order_status"


async def test_an_unknown_order_is_said_by_the_action(bot: Start, action_server: ActionServer) -> None:
    client = await bot(action_endpoint=action_server.url)
    async with client.ws_connect("/webchat/ws") as ws:
        await ws.receive_json()
        decision, [answer] = await say(ws, "u1", "can you check order A-99999")  # the number comes with it
    assert decision["reason"] == "form:order_status_form:completed"
    assert answer["text"].startswith("I could not find order A-99999")


async def test_a_down_action_server_hands_the_conversation_over_with_what_was_collected(bot: Start) -> None:
    client = await bot(action_endpoint="http://127.0.0.1:9/webhook", action_timeout=2)  # nobody listens there
    async with client.ws_connect("/webchat/ws") as ws:
        await ws.receive_json()
        await say(ws, "d1", "where is my order?")
        decision, [notice] = await say(ws, "d2", "A-10235")
    # the first call to the action server is the form's validation of the answer
    assert (decision["action"], decision["reason"]) == ("queued", "action_failed:validate_order_status_form")
    assert notice["text"].startswith("Thanks! A member of our team")
    store = client.server.app[STORE]
    thread = await store.threads.get_thread(decision["thread_id"])
    assert thread is not None and thread.status == "queued"
    state = await state_of(client, decision)
    assert state["slots"] == {"order_number": "A-10235"} and state["tried"][-2:] == [
        "action_failed:validate_order_status_form",
        "handed_off:order_status_form",
    ]
    [entry] = [e for e in await store.queue.contact_timeline(thread.contact_id) if e.kind == "action"]
    assert entry.text.startswith("validate_order_status_form: the action server is unreachable")


async def test_wrong_answers_are_asked_again_with_a_hint_then_handed_over(bot: Start) -> None:
    client = await bot()
    async with client.ws_connect("/webchat/ws") as ws:
        await ws.receive_json()
        await say(ws, "w0", "where is my order?")
        decision, [hint, question] = await say(ws, "w1", "I do not know it")
        assert decision["reason"] == "form:order_status_form:ask_again:order_number"
        assert hint["text"].startswith("That does not look like an order number")
        assert question["text"].startswith("Please send me your order number")
        await say(ws, "w2", "it was a blue box")
        decision, [notice] = await say(ws, "w3", "no idea, sorry")
    assert (decision["action"], decision["reason"]) == ("queued", "form_failed:order_status_form")
    assert notice["text"].startswith("Thanks! A member of our team")


async def test_cancel_ends_the_form_in_the_conversations_language(bot: Start) -> None:
    client = await bot()
    async with client.ws_connect("/webchat/ws") as ws:
        await ws.receive_json()
        await say(ws, "c0", "где мой заказ?")
        decision, [reply] = await say(ws, "c1", "отмена")
        assert (decision["reason"], reply["text"]) == (
            "form_cancelled",
            "Хорошо, остановились. Могу ли я помочь чем-то ещё?",
        )
        decision, [reply] = await say(ws, "c2", "A-10234")  # no form now: not an answer to anything
    assert decision["reason"] != "form:order_status_form:completed"
    assert (await state_of(client, decision))["form"] is None


async def test_another_clear_question_leaves_the_form_and_is_answered(bot: Start) -> None:
    client = await bot()
    async with client.ws_connect("/webchat/ws") as ws:
        await ws.receive_json()
        await say(ws, "q0", "where is my order?")
        decision, [reply] = await say(ws, "q1", "what are your opening hours?")
    assert decision["reason"] == "opening_hours" and reply["text"].startswith("We are open")
    assert (await state_of(client, decision))["form"] is None


async def test_asking_for_a_human_mid_form_hands_over(bot: Start) -> None:
    client = await bot()
    async with client.ws_connect("/webchat/ws") as ws:
        await ws.receive_json()
        await say(ws, "h0", "where is my order?")
        decision, _ = await say(ws, "h1", "I want to talk to a real person")
    assert (decision["action"], decision["reason"]) == ("queued", "intent:talk_to_human")
    assert (await state_of(client, decision))["tried"][-2:] == ["human:", "handed_off:order_status_form"]


async def test_the_dialogue_state_goes_with_the_contact(bot: Start) -> None:
    """The slots hold what the customer said (order numbers, addresses): erasing the contact
    erases them from the thread."""
    client = await bot()
    async with client.ws_connect("/webchat/ws") as ws:
        await ws.receive_json()
        decision, _ = await say(ws, "e1", "can you check order A-10236")
    store = client.server.app[STORE]
    assert (await state_of(client, decision))["slots"] == {"order_number": "A-10236"}
    thread = await store.threads.get_thread(decision["thread_id"])
    assert thread is not None
    await erase_contact(store, await find_contact(store, thread.account_id, thread.contact_id), "cli")
    assert await state_of(client, decision) == {}


async def test_the_agent_taking_over_sees_what_the_bot_collected_and_tried(bot: Start) -> None:
    client = await bot(action_endpoint="http://127.0.0.1:9/webhook", action_timeout=2)
    async with client.ws_connect("/webchat/ws") as ws:
        await ws.receive_json()
        await say(ws, "s1", "where is my order?")
        decision, _ = await say(ws, "s2", "A-10235")
    store = client.server.app[STORE]
    _agent, password = await add_agent(store, "default", "summary-agent", role=Role.AGENT)
    await log_in(client, "summary-agent", password)
    page = await (await client.get("/console", params={"thread": decision["thread_id"]})).text()
    summary = page[page.index('id="bot-summary"') : page.index("</section>", page.index('id="bot-summary"'))]
    assert '<dt class="slot">order_number</dt><dd class="slot-value">A-10235</dd>' in summary
    assert '<dd class="intent">order_status</dd>' in summary
    assert "started the form <code>order_status_form</code>" in summary
    assert "the action failed <code>validate_order_status_form</code>" in summary


async def test_the_forms_validation_action_refuses_an_answer_and_the_question_is_asked_again(
    bot: Start, action_server: ActionServer
) -> None:
    """validate_order_status_form (a rasa-sdk FormValidationAction on the action server) refuses a
    number no order has; its words go before the question asked again."""
    client = await bot(action_endpoint=action_server.url)
    async with client.ws_connect("/webchat/ws") as ws:
        await ws.receive_json()
        await say(ws, "v1", "where is my order?")
        decision, [refusal, question] = await say(ws, "v2", "A-00000")
        assert decision["reason"] == "form:order_status_form:ask_again:order_number"
        assert refusal["text"] == "A-00000 is not an order number we give out: please check your confirmation e-mail."
        assert question["text"].startswith("Please send me your order number")
        decision, [answer] = await say(ws, "v3", "A-10236")
    assert answer["text"] == "Order A-10236 was delivered on 2026-11-30."
    assert (await state_of(client, decision))["slots"]["order_number"] == "A-10236"


async def test_two_messages_of_one_thread_decided_at_once_lose_nothing(bot: Start) -> None:
    """Each message is dispatched in a task of its own (in any router process): the second to store
    its decision is decided again on the first's state, so neither the form nor the number is lost."""
    client = await bot()
    pipeline = client.server.app[PIPELINE]
    results = await asyncio.gather(
        pipeline.receive(webchat_inbound("c-1", "where is my order?")),
        pipeline.receive(webchat_inbound("c-2", "A-10234")),
    )
    await asyncio.gather(*(task for _, task in results if task is not None))
    store = client.server.app[STORE]
    thread_id = results[0][0].message.thread_id
    state = await store.threads.thread_nlu_state(thread_id)
    assert state["v"] == 2  # two decisions, one after the other
    assert [step["message"] for step in state["steps"]] == [
        *({r.message.id for r, _ in results} - {state["by"]}),
        state["by"],
    ]
    if state["by"] == results[1][0].message.id:  # the number came second: it answered the question
        assert state["slots"] == {"order_number": "A-10234"} and state["form"] is None
    else:  # the number came first, alone: the question is asked after it
        assert state["form"] == "order_status_form"


async def test_a_number_given_with_the_question_is_validated_too(bot: Start, action_server: ActionServer) -> None:
    client = await bot(action_endpoint=action_server.url)
    async with client.ws_connect("/webchat/ws") as ws:
        await ws.receive_json()
        decision, [refusal, question] = await say(ws, "p1", "can you check order A-00000")
    assert decision["reason"] == "form:order_status_form:ask:order_number"
    assert refusal["text"].startswith("A-00000 is not an order number we give out")
    assert question["text"].startswith("Please send me your order number")
