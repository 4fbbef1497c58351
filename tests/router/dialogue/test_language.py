"""The conversation's language sticks: short or language-less messages keep it, a sentence switches it."""

from __future__ import annotations

import pytest

from bot.nlu.data import OUT_OF_SCOPE, Parse
from bot.nlu.responses import Responses
from bot.router.dialogue.conversation import respond
from bot.router.dialogue.engine import Said
from bot.router.dialogue.state import DialogueState, conversation_language


@pytest.mark.parametrize(
    ("previous", "detected", "text", "expected"),
    [
        ("en", "ru", "A-10234", "en"),  # a bare order number
        ("en", "lv", "ok", "en"),
        ("en", "ru", "anna@example.com", "en"),
        ("lv", "en", "+371 20000000", "lv"),
        ("en", "ru", "да, спасибо", "en"),  # two words are not enough to switch
        ("en", "ru", "а где мой заказ?", "ru"),  # a sentence in another language switches
        ("ru", "lv", "Cikos jūs strādājat sestdienā?", "lv"),
        (None, "ru", "привет", "ru"),  # the first words set it
        (None, "ru", "12345", None),  # a number tells nothing yet
        ("en", None, "hello there my friend", "en"),
    ],
)
def test_the_conversation_language(previous: str | None, detected: str | None, text: str, expected: str | None) -> None:
    assert conversation_language(previous, detected, text) == expected


def test_the_state_survives_the_store_and_keeps_the_last_ten_tries() -> None:
    state = DialogueState(language="lv", form="f", requested="s", attempts=2, slots={"s": "x"}, intent="i")
    for n in range(12):
        state = state.did(f"step {n}")
    again = DialogueState.from_doc(state.to_doc())
    assert again == state and again.tried[0] == "step 2" and len(again.tried) == 10
    assert again.summary() == {"intent": "i", "form": "f", "slots": {"s": "x"}, "tried": list(state.tried)}
    assert again.tally == {f"step {n}": 1 for n in range(12)}  # the reports count every step


def test_the_tally_counts_a_step_each_time() -> None:
    state = DialogueState()
    for _ in range(15):
        state = state.did("form:f").did("cancelled:f")
    assert DialogueState.from_doc(state.to_doc()).tally == {"form:f": 15, "cancelled:f": 15}


async def test_the_first_message_with_words_sets_the_language_after_one_without() -> None:
    """A bare number first tells no language: the conversation has none yet (replies are in the
    default), and the next words set it, however few."""
    responses = Responses(languages=["en", "ru"], fallback={"en": "Sorry?", "ru": "Простите?"})
    state = DialogueState()
    for n, (text, detected) in enumerate((("A-10234", "ru"), ("Где заказ?", "ru"))):
        parse = Parse(text=text, intent=OUT_OF_SCOPE, confidence=0.1, language=detected)
        step = await respond(None, responses, Said("t", "webchat", text, f"m{n}"), parse, state)
        state = step.state
        if n == 0:
            assert state.language is None and step.texts == ("Sorry?",)
    assert state.language == "ru"  # two words set it: it had none to switch from
