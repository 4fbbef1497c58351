"""What the bot does with one parsed message, given the conversation so far: the dialogue (forms,
actions) first, the one-shot policy (``policy.plan``) for what the dialogue leaves. No store and no
sending here: the dispatcher carries a :class:`Step` out; ``omnirouter nlu test-stories`` compares
it with what a story expects.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from bot.nlu.data import Parse
from bot.nlu.responses import Responses
from bot.router.dialogue.engine import DEACTIVATE, HANDOFF, Dialogue, Event, Said
from bot.router.dialogue.state import DialogueState, conversation_language
from bot.router.policy import CLARIFY, FALLBACK, LOW_CONFIDENCE, plan


@dataclass(frozen=True)
class Step:
    reason: str  # recorded on the message's decision
    state: DialogueState  # the conversation after this message
    parse: Parse  # the message's parse (a clarifying button resolved to its intent)
    texts: tuple[str, ...] = ()  # to send; with ``handoff``, the notice (none: the usual hand-off line)
    handoff: bool = False
    options: Mapping[str, str] = field(default_factory=dict)  # buttons of the last text: label -> intent
    notes: tuple[str, ...] = ()  # for the thread's timeline
    events: tuple[Event, ...] = ()  # as Rasa's stories write it

    def record(self, message_id: str) -> dict[str, Any]:
        """What carrying the step out needs, kept with the thread's dialogue state: a replayed
        dispatch of the message carries out the same step instead of deciding (and acting) again."""
        return {
            "message": message_id,
            "reason": self.reason,
            "texts": list(self.texts),
            "handoff": self.handoff,
            "options": dict(self.options),
            "notes": list(self.notes),
            "language": self.state.language,
        }

    @classmethod
    def recorded(cls, doc: Mapping[str, Any], parse: Parse, state: DialogueState) -> Step:
        return cls(
            str(doc["reason"]),
            replace(state, language=doc.get("language")),
            parse,
            tuple(doc.get("texts") or ()),
            bool(doc.get("handoff")),
            dict(doc.get("options") or {}),
            tuple(doc.get("notes") or ()),
        )


def resolve_clarification(parse: Parse, text: str, options: Mapping[str, str]) -> Parse:
    """A click on a clarifying question's button sends its label: that is the intent. Where
    the options were a numbered list (channels without buttons), their number is too."""
    choices = {label.casefold(): intent for label, intent in options.items()}
    choices.update({str(n): intent for n, intent in enumerate(options.values(), start=1)})
    chosen = choices.get(text.strip().rstrip(".").casefold())
    if chosen is None:
        return parse
    return dataclasses.replace(parse, intent=chosen, confidence=1.0, ambiguous=False, engine="clarified")


async def respond(
    dialogue: Dialogue | None, responses: Responses, said: Said, parse: Parse, state: DialogueState
) -> Step:
    parse = resolve_clarification(parse, said.text, state.options)
    # the words of what the language was told by (the NLU's bounded prefix of a long text); None: no words yet
    spoken = conversation_language(state.language, parse.language, parse.text)
    language = responses.language(spoken)  # the one replies are in
    switched: tuple[Event, ...] = (("slot", ("language", spoken)),) if spoken and spoken != state.language else ()
    state = replace(state, language=spoken, options={})
    turn = await dialogue.turn(said, parse, state) if dialogue is not None else None
    if turn is not None:
        after = replace(turn.state, low_streak=0)
        return Step(turn.reason, after, parse, turn.texts, turn.handoff, {}, turn.notes, (*switched, *turn.events))
    left: tuple[Event, ...] = ()
    if state.form is not None:  # the dialogue let the form go: another question came
        state, left = state.without_form().did(f"left:{state.form}"), (("action", DEACTIVATE), ("active_loop", None))
    chosen = plan(parse, responses, language, state.low_streak + 1, said.seed)
    unsure = chosen.reason in (FALLBACK, CLARIFY, LOW_CONFIDENCE)
    after = replace(
        state,
        low_streak=state.low_streak + 1 if unsure else 0,
        options=dict(chosen.options),
        intent=state.intent if parse.out_of_scope else parse.intent,
    )
    texts = (chosen.text,) if chosen.text else ()
    action = HANDOFF if chosen.queue else _utterance(chosen.reason)
    events = (*switched, *left, ("action", action))
    return Step(chosen.reason, after, parse, texts, chosen.queue, chosen.options, events=events)


def _utterance(reason: str) -> str:
    """A one-shot answer as a story names it: ``utter_<intent>``, ``utter_fallback``, ``utter_clarify``."""
    return f"utter_{reason}"
