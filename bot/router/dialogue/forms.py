"""Reading a customer's message as the answer to the bot's question: slot mappings and validation.

While a form asks for a slot, the message is read as that slot first (a bare "A-10234" after "your
order number?" is the order number, whatever the classifier makes of it); entities in any message
fill the form's other slots too. A categorical slot takes one of its values (in any letter case);
a slot with a ``pattern`` takes only a text that matches it whole.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bot.nlu.data import Parse
from bot.router.dialogue.domain import Form, Slot, SlotMapping

# words that end a form, in each language the starter bot speaks (a domain may add its own)
CANCEL_WORDS: Mapping[str, frozenset[str]] = {
    "en": frozenset({"cancel", "stop", "never mind", "nevermind", "quit", "forget it"}),
    "lv": frozenset({"atcelt", "atcel", "stop", "beigt", "nevajag", "aizmirsti"}),
    "ru": frozenset({"отмена", "отменить", "стоп", "хватит", "не надо", "забудь"}),
}


def is_cancel(text: str) -> bool:
    """Whether ``text`` asks to stop the form (in any language: the customer may not use the
    conversation's)."""
    said = text.strip().strip(".!").casefold()
    return any(said in words for words in CANCEL_WORDS.values())


def valid(slot: Slot, value: Any) -> Any | None:
    """``value`` as the slot keeps it, or ``None`` when the slot does not take it."""
    if value is None:
        return None
    text = str(value).strip()
    if not text:
        return None
    if slot.values:
        return next((v for v in slot.values if v.casefold() == text.casefold()), None)
    if slot.pattern is not None and not slot.pattern.fullmatch(text):
        return None
    return value if not isinstance(value, str) else text


def _applies(mapping: SlotMapping, parse: Parse, form: str | None) -> bool:
    if mapping.intents and parse.intent not in mapping.intents:
        return False
    if parse.intent in mapping.not_intents:
        return False
    return mapping.for_form is None or mapping.for_form == form


def from_entities(slot: Slot, parse: Parse, form: str | None) -> Any | None:
    """The slot's value from an entity of the message (any slot of the form, asked or not)."""
    for mapping in slot.mappings:
        if mapping.kind == "from_entity" and _applies(mapping, parse, form):
            for entity in parse.entities:
                if entity.entity == mapping.entity and (value := valid(slot, entity.value)) is not None:
                    return value
    return None


def from_answer(slot: Slot, parse: Parse, text: str, form: str | None) -> Any | None:
    """The asked slot's value from the whole message or its intent (``from_text``, ``from_intent``)."""
    for mapping in slot.mappings:
        if not _applies(mapping, parse, form):
            continue
        if mapping.kind == "from_text" and (value := valid(slot, text)) is not None:
            return value
        if mapping.kind == "from_intent" and mapping.intents and parse.intent in mapping.intents:
            return mapping.value
    return None


def prefill(form: Form, slots: Mapping[str, Slot], parse: Parse, known: Mapping[str, Any]) -> dict[str, Any]:
    """``known`` with every empty slot of ``form`` that the message's entities fill."""
    filled = dict(known)
    for name in form.required:
        if filled.get(name) is None and (value := from_entities(slots[name], parse, form.name)) is not None:
            filled[name] = value
    return filled


def next_slot(form: Form, filled: Mapping[str, Any]) -> str | None:
    return next((name for name in form.required if filled.get(name) is None), None)
