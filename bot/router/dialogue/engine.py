"""One turn of the bot's conversation: fill the active form, start one, or run an intent's action.

:meth:`Dialogue.turn` returns ``None`` when the dialogue has nothing to say about a message (no form
is active and its intent starts none): the dispatcher's one-shot policy answers it then. Otherwise a
:class:`Turn` says what to send, whether to hand the conversation to a human (with the reason and
what the bot collected), and the state to keep.

While a form is active: "cancel" (in any language) ends it; asking for a human hands over with the
slots; the message is read as the asked slot first; a message that clearly is another intent
leaves the form to the one-shot policy; anything else is a wrong answer, asked again with the
slot's hint, until ``max_attempts`` wrong answers hand the conversation to a human.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from bot.nlu.data import Parse
from bot.nlu.responses import TALK_TO_HUMAN, Responses
from bot.router.dialogue.actions import ActionFailed, ActionServer
from bot.router.dialogue.domain import Domain, Form, HttpAction
from bot.router.dialogue.forms import from_answer, from_entities, is_cancel, next_slot, prefill
from bot.router.dialogue.http_actions import HttpActions
from bot.router.dialogue.state import DialogueState

_PLACEHOLDER = re.compile(r"\{(\w+)\}")
CANCELLED = "form_cancelled"
HANDOFF = "action_handoff"  # a story's name for handing the conversation to a human
DEACTIVATE = "action_deactivate_loop"  # Rasa's name for ending a form early

# ("action", name), ("active_loop", form or None), ("slot", (name, value))
Event = tuple[str, Any]


def slot_events(before: Mapping[str, Any], after: Mapping[str, Any]) -> tuple[Event, ...]:
    return tuple(("slot", (k, v)) for k, v in after.items() if before.get(k) != v)


@dataclass(frozen=True)
class Turn:
    state: DialogueState
    reason: str  # recorded on the message's decision
    texts: tuple[str, ...] = ()
    handoff: bool = False  # hand the conversation to a human (``texts``, if any, tell the customer)
    notes: tuple[str, ...] = field(default=())  # for the thread's timeline: actions run and how they ended
    events: tuple[Event, ...] = ()  # what the bot did, as Rasa's stories write it (``omnirouter nlu test-stories``)


@dataclass(frozen=True)
class Said:
    """The message the turn is about."""

    conversation: str  # the thread id: the action server's sender_id
    channel: str
    text: str
    seed: str  # picks among a response's variations (the message id: a replay says the same)


class Dialogue:
    def __init__(
        self,
        domain: Domain,
        responses: Responses,
        actions: ActionServer | None = None,
        clear_intent: float = 0.6,
        http: HttpActions | None = None,
        owner: str | None = None,
        install_actions: Mapping[str, HttpAction] | None = None,
    ) -> None:
        self.domain = domain
        self._http = http
        self._owner = owner  # the account whose published content this is; None: the install's files
        # the install's own HTTP actions: one an account's copy keeps unchanged is still the install's
        self._install_actions = install_actions if install_actions is not None else domain.http_actions
        self._responses = responses
        self._actions = actions
        self._clear = clear_intent  # a message this sure of another intent leaves the form

    def with_content(self, domain: Domain, responses: Responses, account_id: str) -> Dialogue:
        """The same dialogue (action server, HTTP actions) with an account's edited content: an HTTP
        action it added or changed uses that account's secrets only; one it kept exactly as the
        install's files have it (an edit of the answers copies them all) is still the install's."""
        return Dialogue(domain, responses, self._actions, self._clear, self._http, account_id, self._install_actions)

    async def turn(self, said: Said, parse: Parse, state: DialogueState) -> Turn | None:
        if state.form in self.domain.forms:
            return await self._in_form(said, parse, state, self.domain.forms[str(state.form)])
        if not self._confident(parse):
            return None
        form = self.domain.form_for(parse.intent)
        if form is not None:
            started = replace(state, form=form.name, attempts=0, intent=parse.intent).did(f"form:{form.name}")
            candidates = prefill(form, self.domain.slots, parse, state.slots)
            try:
                slots, told = await self._validate_new(said, parse, started, form, candidates, skip=None)
            except ActionFailed as exc:
                return self._validation_failed(started, form, candidates, exc)
            turn = await self._next(said, replace(started, slots=slots), form, slot_events(state.slots, slots))
            return replace(turn, texts=(*told, *turn.texts))
        action = self.domain.answers.get(parse.intent)
        if action is not None:
            return await self._run(said, parse, replace(state, intent=parse.intent), action, f"action:{action}", ())
        return None

    def _confident(self, parse: Parse) -> bool:
        return not parse.out_of_scope and not parse.ambiguous

    async def _in_form(self, said: Said, parse: Parse, state: DialogueState, form: Form) -> Turn | None:
        asked = state.requested if state.requested in form.required else next_slot(form, state.slots)
        if is_cancel(said.text):
            done = state.without_form().did(f"cancelled:{form.name}")
            ended = (("action", DEACTIVATE), ("active_loop", None))
            return Turn(done, CANCELLED, self._say("utter_form_cancelled", said, done), events=ended)
        if parse.intent == TALK_TO_HUMAN and self._confident(parse):
            handed = state.without_form().did("human:").did(f"handed_off:{form.name}")
            return Turn(handed, f"intent:{TALK_TO_HUMAN}", handoff=True, events=(("action", HANDOFF),))
        candidates = {k: v for k, v in prefill(form, self.domain.slots, parse, state.slots).items() if k != asked}
        value = from_entities(self.domain.slots[asked], parse, form.name) if asked else None
        if asked and value is None and not self._leaves(parse, state):
            value = from_answer(self.domain.slots[asked], parse, said.text, form.name)
        try:  # what the form's validation action said goes before the bot's next words
            slots, told = await self._validate_new(said, parse, state, form, candidates, skip=asked)
            if asked and value is not None:
                value, more = await self._validated(said, parse, replace(state, slots=slots), form, asked, value)
                told = (*told, *more)
        except ActionFailed as exc:
            return self._validation_failed(state, form, {**candidates, **({asked: value} if asked else {})}, exc)
        if asked and value is not None:
            slots[asked] = value
            filled = slot_events(state.slots, slots)
            turn = await self._next(said, replace(state, slots=slots, attempts=0), form, filled)
            return replace(turn, texts=(*told, *turn.texts))
        if not told and self._leaves(parse, state):
            return None  # another question: the one-shot policy answers it
        wrong = replace(state, slots=slots, attempts=state.attempts + 1)
        if wrong.attempts >= self.domain.max_attempts:
            gave_up = (("action", form.name), ("active_loop", None), ("action", HANDOFF))
            handed = wrong.without_form().did(f"gave_up:{asked}").did(f"handed_off:{form.name}")
            return Turn(handed, f"form_failed:{form.name}", handoff=True, events=gave_up)
        hint = told or self._say(f"utter_invalid_{asked}", said, wrong)
        texts = (*hint, *self._ask(form, str(asked), said, wrong))
        asking = (("action", form.name), ("active_loop", form.name))
        return Turn(wrong, f"form:{form.name}:ask_again:{asked}", texts, events=asking)

    async def _validate_new(
        self, said: Said, parse: Parse, state: DialogueState, form: Form, slots: Mapping[str, Any], skip: str | None
    ) -> tuple[dict[str, Any], tuple[str, ...]]:
        """``slots`` with every value new since ``state`` (but ``skip``) kept, changed or dropped by
        the form's validation action, and what it said."""
        kept, told = dict(slots), tuple[str, ...]()
        for name in form.required:
            if name != skip and kept.get(name) is not None and state.slots.get(name) != kept[name]:
                value, said_back = await self._validated(
                    said, parse, replace(state, slots=kept), form, name, kept[name]
                )
                told = (*told, *said_back)
                if value is None:
                    kept.pop(name)
                else:
                    kept[name] = value
        return kept, told

    def _validation_failed(
        self, state: DialogueState, form: Form, answers: Mapping[str, Any], exc: ActionFailed
    ) -> Turn:
        """The validation action could not be reached: a human takes over with the answers as given."""
        kept = {**state.slots, **{k: v for k, v in answers.items() if v is not None}}
        handed = replace(state, slots=kept).without_form()
        handed = handed.did(f"action_failed:validate_{form.name}").did(f"handed_off:{form.name}")
        events = (("action", form.name), *slot_events(state.slots, kept), ("active_loop", None), ("action", HANDOFF))
        note = f"validate_{form.name}: {exc}"
        return Turn(handed, f"action_failed:validate_{form.name}", handoff=True, notes=(note,), events=events)

    async def _validated(
        self, said: Said, parse: Parse, state: DialogueState, form: Form, slot: str, value: Any
    ) -> tuple[Any | None, tuple[str, ...]]:
        """``value`` as the form's validation action (``validate_<form>``, Rasa's
        FormValidationAction) keeps it — ``None`` if it refused it — and what it said. Without such
        an action in the domain, or without an action server, the value as it is."""
        action = f"validate_{form.name}"
        if self._actions is None or action not in self.domain.actions:
            return value, ()
        asking = replace(state, slots={**state.slots, slot: value}, requested=slot, form=form.name)
        tracker = self._tracker(said, parse, asking)
        # the candidate last, after the customer's message: what rasa-sdk's slots_to_validate() reads
        tracker["events"] = [{"event": "user", "text": said.text}, {"event": "slot", "name": slot, "value": value}]
        outcome = await self._actions.run(action, said.conversation, tracker, self.domain.as_rasa())
        kept = outcome.slots.get(slot, value)
        texts = [*outcome.texts, *(t for name in outcome.responses for t in self._say(name, said, asking))]
        return kept, tuple(texts)

    def _leaves(self, parse: Parse, state: DialogueState) -> bool:
        return self._confident(parse) and parse.intent != state.intent and parse.confidence >= self._clear

    async def _next(self, said: Said, state: DialogueState, form: Form, filled: tuple[Event, ...]) -> Turn:
        """Ask for the form's next empty slot, or run what completes the form."""
        slot = next_slot(form, state.slots)
        if slot is not None:
            asking = replace(state, requested=slot)
            events = (("action", form.name), *filled, ("active_loop", form.name))
            return Turn(asking, f"form:{form.name}:ask:{slot}", self._ask(form, slot, said, asking), events=events)
        done = state.without_form().did(f"completed:{form.name}")
        events = (("action", form.name), *filled, ("active_loop", None))
        if form.submit is None:
            return Turn(done, f"form:{form.name}:completed", events=events)
        empty = Parse(text=said.text, intent=state.intent or "", confidence=1.0)
        turn = await self._run(said, empty, done, form.submit, f"form:{form.name}:completed", events)
        return replace(turn, state=turn.state.did(f"handed_off:{form.name}")) if turn.handoff else turn

    async def _run(
        self, said: Said, parse: Parse, state: DialogueState, action: str, reason: str, before: tuple[Event, ...]
    ) -> Turn:
        """Run a response (``utter_...``) or a custom action and say what it says."""
        ran = (*before, ("action", action))
        failed = (*ran, ("action", HANDOFF))
        if action.startswith("utter_"):
            return Turn(state.did(f"said:{action}"), reason, self._say(action, said, state), events=ran)
        if action in self.domain.http_actions and self._http is not None:
            return await self._run_http(said, state, self.domain.http_actions[action], reason, ran)
        if self._actions is None and action in self.domain.offline:
            said_instead = self._say(self.domain.offline[action], said, state)
            return Turn(state.did(f"offline:{action}"), reason, said_instead, events=ran)
        if self._actions is None:
            why = f"{action}: no action server is configured (dialogue.action_endpoint)"
            return Turn(
                state.did(f"action_failed:{action}"),
                f"action_failed:{action}",
                handoff=True,
                notes=(why,),
                events=failed,
            )
        try:
            outcome = await self._actions.run(
                action, said.conversation, self._tracker(said, parse, state), self.domain.as_rasa()
            )
        except ActionFailed as exc:
            return Turn(
                state.did(f"action_failed:{action}"),
                f"action_failed:{action}",
                handoff=True,
                notes=(f"{action}: {exc}",),
                events=failed,
            )
        slots = {**state.slots, **{k: v for k, v in outcome.slots.items() if k != "language"}}
        after = replace(state, slots=slots).did(f"action:{action}")
        texts = [*outcome.texts, *(t for name in outcome.responses for t in self._say(name, said, after))]
        return Turn(
            after, reason, tuple(texts), notes=(f"{action}: done",), events=(*ran, *slot_events(state.slots, slots))
        )

    async def _run_http(
        self, said: Said, state: DialogueState, action: HttpAction, reason: str, ran: tuple[Event, ...]
    ) -> Turn:
        assert self._http is not None
        try:
            slots = {**state.slots, "language": self._language(state)}
            owner = None if self._install_actions.get(action.name) == action else self._owner
            found, response = await self._http.run(action, slots, owner)
        except ActionFailed as exc:
            failed = state.did(f"action_failed:{action.name}")
            handoff = (*ran, ("action", HANDOFF))
            return Turn(
                failed, f"action_failed:{action.name}", handoff=True, notes=(f"{action.name}: {exc}",), events=handoff
            )
        slots = {**state.slots, **{k: v for k, v in found.items() if v is not None}}
        after = replace(state, slots=slots).did(f"action:{action.name}")
        texts = self._say(response, said, after) if response else ()
        outcome = "not found" if response is not None and response == action.not_found else "done"
        events = (*ran, *slot_events(state.slots, slots))
        return Turn(after, reason, texts, notes=(f"{action.name}: {outcome}",), events=events)

    def _tracker(self, said: Said, parse: Parse, state: DialogueState) -> dict[str, Any]:
        """The conversation as Rasa's action server reads it."""
        return {
            "sender_id": said.conversation,
            "slots": {**state.slots, "language": self._language(state), "requested_slot": state.requested},
            "latest_message": {
                "text": said.text,
                "intent": {"name": parse.intent, "confidence": parse.confidence},
                "entities": [
                    {"entity": e.entity, "value": e.value, "start": e.start, "end": e.end} for e in parse.entities
                ],
            },
            "events": [],
            "paused": False,
            "followup_action": None,
            "active_loop": {"name": state.form} if state.form else {},
            "latest_action_name": "action_listen",
            "latest_input_channel": said.channel,
        }

    def _language(self, state: DialogueState) -> str:
        """The language the bot speaks in this conversation (the default until the customer's words tell)."""
        return self._responses.language(state.language)

    def _ask(self, form: Form, slot: str, said: Said, state: DialogueState) -> tuple[str, ...]:
        specific = self._say(f"utter_ask_{form.name}_{slot}", said, state)
        return specific or self._say(f"utter_ask_{slot}", said, state)

    def _say(self, response: str, said: Said, state: DialogueState) -> tuple[str, ...]:
        """One variation of ``response`` in the conversation's language, its ``{slot}``s filled."""
        language = self._language(state)
        variants = self.domain.response(response, language, self._responses.default_language)
        if not variants:
            return ()
        values: Mapping[str, Any] = state.slots
        usable = [v for v in variants if all(values.get(n) is not None for n in _PLACEHOLDER.findall(v))] or variants
        chosen = usable[
            int.from_bytes(hashlib.sha256(f"{said.seed}{response}".encode()).digest()[:4], "big") % len(usable)
        ]
        return (_PLACEHOLDER.sub(lambda m: str(values.get(m.group(1), m.group(0))), chosen),)
