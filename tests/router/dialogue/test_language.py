"""The conversation's language sticks: short or language-less messages keep it, a sentence switches it."""

from __future__ import annotations

import pytest

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
