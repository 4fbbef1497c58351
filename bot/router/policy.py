"""The bot's dialogue policy as a pure function: what to do with one parse. The dispatcher
carries the plan out; the console's "try it" box shows it without sending anything."""

from __future__ import annotations

from dataclasses import dataclass, field

from bot.nlu.data import Parse
from bot.nlu.responses import Responses

LOW_CONFIDENCE = "low_confidence"
CLARIFY = "clarify"
FALLBACK = "fallback"
FALLBACK_TEXT = "Sorry, I did not understand. Could you say it in other words?"
CLARIFY_TEXT = "Which of these do you mean?"


@dataclass(frozen=True)
class Plan:
    """``queue``: hand the thread to humans (``text`` is the notice, ``None`` for the usual
    hand-off line); otherwise reply ``text``, with ``options`` (label -> intent) as buttons."""

    queue: bool
    reason: str
    text: str | None
    options: dict[str, str] = field(default_factory=dict)


def plan(parse: Parse, responses: Responses, language: str, streak: int, seed: str) -> Plan:
    """``streak``: how many messages in a row, this one included, the bot would not have
    understood; ``seed`` picks among equal answer variants (the message id)."""
    if not parse.out_of_scope and parse.intent in responses.escalate:
        return Plan(True, f"intent:{parse.intent}", responses.answer(parse.intent, language, parse.entities, seed))
    if (parse.out_of_scope or parse.ambiguous) and streak >= 2:
        return Plan(True, LOW_CONFIDENCE, None)
    if parse.out_of_scope:
        return Plan(False, FALLBACK, responses.line("fallback", language, FALLBACK_TEXT))
    if parse.ambiguous:
        options = {
            responses.title(name, language): name
            for name, _ in parse.ranking[:3]
            if name in responses.texts or name in responses.escalate
        }
        if len(options) >= 2:
            return Plan(False, CLARIFY, responses.line("clarify", language, CLARIFY_TEXT), options)
    answer = responses.answer(parse.intent, language, parse.entities, seed)
    if answer is None:
        return Plan(True, f"no_response:{parse.intent}", None)
    return Plan(False, parse.intent, answer)
