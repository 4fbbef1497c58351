"""The action server protocol's answers read, and the breaker of an endpoint that keeps failing."""

from __future__ import annotations

import pytest

from bot.handlers.kit.egress import Egress
from bot.router.dialogue.actions import ActionFailed, ActionServer, Breaker, outcome_of


def test_slots_texts_and_named_responses_are_read_from_an_answer() -> None:
    outcome = outcome_of(
        {
            "events": [
                {"event": "slot", "name": "order_status", "value": "shipped"},
                {"event": "followup", "name": "x"},
            ],
            "responses": [{"text": "Shipped."}, {"response": "utter_anything_else"}, {"text": ""}, {"image": "x.png"}],
        }
    )
    assert outcome.slots == {"order_status": "shipped"}
    assert outcome.texts == ("Shipped.",) and outcome.responses == ("utter_anything_else",)


@pytest.mark.parametrize("answer", [[], "text", {"events": {"a": 1}}, {"responses": "hi"}])
def test_an_answer_that_is_not_the_protocols_is_a_failure(answer: object) -> None:
    with pytest.raises(ActionFailed):
        outcome_of(answer)


def test_the_breaker_opens_after_failures_in_a_row_and_a_success_resets_it() -> None:
    breaker = Breaker(failures_to_open=2, open_seconds=60)
    breaker.failed()
    breaker.check()  # one failure: still closed
    breaker.succeeded()
    breaker.failed()
    breaker.check()
    breaker.failed()
    with pytest.raises(ActionFailed, match="failed 2 times in a row"):
        breaker.check()


async def test_the_egress_guard_refuses_an_action_server_at_a_private_address() -> None:
    """An endpoint the operator did not allow by name is reached through the guard, which refuses
    loopback: the dialogue hands over with the guard's reason."""
    server = ActionServer("http://127.0.0.1:9/webhook", Egress().session, timeout=2)
    try:
        with pytest.raises(ActionFailed, match="egress guard refused"):
            await server.run("action_order_status", "t1", {"sender_id": "t1"}, {})
    finally:
        await server.close()
