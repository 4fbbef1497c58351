"""What the bot says, per intent and language: ``config/responses.yml``.

```yaml
languages: [en, lv, ru]        # the first is the default
escalate: [complaint]          # intents handed to a human (talk_to_human always is)
intents:
  opening_hours:
    title: {en: Opening hours, lv: Darba laiks, ru: Часы работы}   # button label
    text:
      en: ["We are open Mon-Fri 9:00-18:00."]
      lv: ["Strādājam P-Pk 9:00-18:00."]
  order_status:
    text:
      en: ["Let me check order {order_number}.", "Which order number is it?"]
fallback: {en: "Sorry, could you say that in other words?"}
clarify: {en: "Which of these do you mean?"}
handoff: {en: "A member of our team will reply here as soon as possible."}
```

A text may name entities in braces; a variant is used only when the message had every entity
it names, the ones using the most entities first; among equals the message id picks, so a
replayed dispatch says the same.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.nlu.data import Entity
from bot.nlu.yaml_files import parse_mapping, read_mapping

TALK_TO_HUMAN = "talk_to_human"
_PLACEHOLDER = re.compile(r"\{(\w+)\}")
_SHAPE = "with `intents:`"


class ResponsesError(ValueError):
    """``responses.yml`` is wrong; the message names the file and the problem."""


@dataclass
class Responses:
    languages: list[str] = field(default_factory=lambda: ["en"])
    escalate: set[str] = field(default_factory=lambda: {TALK_TO_HUMAN})
    texts: dict[str, dict[str, list[str]]] = field(default_factory=dict)  # intent -> lang -> variants
    titles: dict[str, dict[str, str]] = field(default_factory=dict)  # intent -> lang -> label
    fallback: dict[str, str] = field(default_factory=dict)
    clarify: dict[str, str] = field(default_factory=dict)
    handoff: dict[str, str] = field(default_factory=dict)

    @property
    def default_language(self) -> str:
        return self.languages[0]

    def language(self, wanted: str | None) -> str:
        return wanted if wanted in self.languages else self.default_language

    def answer(self, intent: str, language: str, entities: Sequence[Entity], seed: str) -> str | None:
        """The reply to a confident ``intent``, or ``None`` when there is none in any language."""
        by_language = self.texts.get(intent, {})
        variants = by_language.get(language) or by_language.get(self.default_language) or []
        values = {e.entity: e.value for e in entities}
        usable = [v for v in variants if set(_PLACEHOLDER.findall(v)) <= values.keys()]
        if not usable:
            return None
        most = max(len(set(_PLACEHOLDER.findall(v))) for v in usable)  # the most specific texts
        usable = [v for v in usable if len(set(_PLACEHOLDER.findall(v))) == most]
        chosen = usable[_pick(seed, len(usable))]
        return _PLACEHOLDER.sub(lambda m: values[m.group(1)], chosen)

    def title(self, intent: str, language: str) -> str:
        titles = self.titles.get(intent, {})
        return titles.get(language) or titles.get(self.default_language) or intent.replace("_", " ").capitalize()

    def line(self, kind: str, language: str, default: str) -> str:
        table: dict[str, str] = getattr(self, kind)
        return table.get(language) or table.get(self.default_language) or default


def _pick(seed: str, count: int) -> int:
    return int.from_bytes(hashlib.sha256(seed.encode()).digest()[:4], "big") % count


def load_responses(path: Path) -> Responses:
    """Read ``responses.yml``; a missing file means no canned answers (everything escalates)."""
    if not path.exists():
        return Responses()
    return responses_from(read_mapping(path, ResponsesError, _SHAPE), str(path))


def parse_responses(text: str, where: str) -> Responses:
    """Responses from ``responses.yml``'s text (an account's copy edited in the console)."""
    return responses_from(parse_mapping(text, where, ResponsesError, _SHAPE), where)


def responses_from(raw: Mapping[str, Any], path: str) -> Responses:
    languages = [str(x) for x in raw.get("languages") or ["en"]]
    responses = Responses(
        languages=languages,
        escalate={TALK_TO_HUMAN, *map(str, raw.get("escalate") or [])},
        fallback=_per_language(raw.get("fallback"), path, "fallback"),
        clarify=_per_language(raw.get("clarify"), path, "clarify"),
        handoff=_per_language(raw.get("handoff"), path, "handoff"),
    )
    for intent, spec in (raw.get("intents") or {}).items():
        if not isinstance(spec, Mapping):
            raise ResponsesError(f"{path}: intents.{intent} must be a mapping with `text:`")
        responses.titles[str(intent)] = _per_language(spec.get("title"), path, f"intents.{intent}.title")
        texts: dict[str, list[str]] = {}
        for language, variants in (spec.get("text") or {}).items():
            items = [variants] if isinstance(variants, str) else variants
            if not isinstance(items, list) or not all(isinstance(v, str) for v in items):
                raise ResponsesError(f"{path}: intents.{intent}.text.{language} must be a text or a list of texts")
            texts[str(language)] = items
        responses.texts[str(intent)] = texts
        if spec.get("escalate"):
            responses.escalate.add(str(intent))
    return responses


def _per_language(value: Any, path: str, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(isinstance(v, str) for v in value.values()):
        raise ResponsesError(f"{path}: {where} must map languages to texts")
    return {str(k): v for k, v in value.items()}
