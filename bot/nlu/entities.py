"""Entities the Rasa way: regex patterns, lookup tables and synonyms, plus built-in extractors
for e-mail addresses, phone numbers and order-number-like tokens.

Where two extractors claim overlapping text, the more specific wins: the admins' regexes, then
lookup tables (including every value annotated in the training examples), then e-mail, phone,
order number. Values found through a synonym are reported as the canonical value.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bot.nlu.data import Entity, TrainingData

EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
PHONE = re.compile(
    r"(?<![\w+])(?:\+\d[\d ().-]{5,}\d"  # international: +371 2000 0000
    r"|\(?\d{2,4}\)?[ .-]\d{2,4}[ .-]\d{2,5}(?:[ .-]\d{2,4})?)(?!\w)"  # grouped: 020 7946 0958
)
ORDER = re.compile(
    r"(?<![\w#-])(?:#[A-Za-z]{0,5}-?\d{3,}[A-Za-z\d-]*"  # #12345, #A-123
    r"|[A-Za-z]{1,5}-?\d{3,}[A-Za-z\d-]*"  # ORD-2024-001, A12345
    r"|\d{5,12})(?![\w-])"  # 123456
)


@dataclass(frozen=True)
class _Candidate:
    rank: int
    start: int
    end: int
    entity: str
    value: str
    extractor: str


@dataclass
class EntityExtractor:
    """Finds entities in a text; built from training data, stored inside a trained model."""

    regexes: dict[str, list[str]] = field(default_factory=dict)
    lookups: dict[str, list[str]] = field(default_factory=dict)
    synonyms: dict[str, str] = field(default_factory=dict)  # lower-cased variant -> canonical
    builtins: bool = True

    def __post_init__(self) -> None:
        self._regexes = [
            (name, re.compile(pattern, re.IGNORECASE))
            for name, patterns in self.regexes.items()
            for pattern in patterns
        ]
        variants: dict[str, list[str]] = {}
        for variant, canonical in self.synonyms.items():
            variants.setdefault(canonical.lower(), []).append(variant)
        self._lookups = []
        self._canonical: dict[str, str] = {}  # lower-cased lookup value -> as listed
        for name, values in self.lookups.items():
            listed = [*values, *(v for value in values for v in variants.get(value.lower(), []))]
            if listed:
                self._lookups.append((name, _alternation(listed)))
            self._canonical.update({value.lower(): value for value in values})

    @classmethod
    def from_training(cls, data: TrainingData, builtins: bool = True) -> EntityExtractor:
        return cls(
            regexes={k: list(v) for k, v in data.regexes.items()},
            lookups=data.entity_values(),
            synonyms=data.synonym_map(),
            builtins=builtins,
        )

    def to_doc(self) -> dict[str, Any]:
        return {"regexes": self.regexes, "lookups": self.lookups, "synonyms": self.synonyms, "builtins": self.builtins}

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> EntityExtractor:
        return cls(
            regexes=dict(doc.get("regexes", {})),
            lookups=dict(doc.get("lookups", {})),
            synonyms=dict(doc.get("synonyms", {})),
            builtins=bool(doc.get("builtins", True)),
        )

    def extract(self, text: str) -> tuple[Entity, ...]:
        candidates = self._candidates(text)
        chosen: list[_Candidate] = []
        for cand in sorted(candidates, key=lambda c: (c.rank, c.start, -(c.end - c.start))):
            if all(cand.end <= c.start or cand.start >= c.end for c in chosen):
                chosen.append(cand)
        return tuple(
            Entity(c.entity, self._value(c), c.start, c.end, c.extractor) for c in sorted(chosen, key=lambda c: c.start)
        )

    def _value(self, cand: _Candidate) -> str:
        lowered = cand.value.lower()
        if lowered in self.synonyms:
            return self.synonyms[lowered]
        return self._canonical.get(lowered, cand.value) if cand.extractor == "lookup" else cand.value

    def _candidates(self, text: str) -> list[_Candidate]:
        found: list[_Candidate] = []
        for name, pattern in self._regexes:
            found += _matches(pattern, text, 0, name, "regex")
        for name, pattern in self._lookups:
            found += _matches(pattern, text, 1, name, "lookup")
        if self.builtins:
            found += _matches(EMAIL, text, 2, "email", "builtin")
            found += [
                _Candidate(c.rank, c.start, c.end, c.entity, _phone_value(c.value), c.extractor)
                for c in _matches(PHONE, text, 3, "phone", "builtin")
                if 7 <= sum(ch.isdigit() for ch in c.value) <= 15
            ]
            found += [
                _Candidate(c.rank, c.start, c.end, c.entity, c.value.lstrip("#").upper(), c.extractor)
                for c in _matches(ORDER, text, 4, "order_number", "builtin")
            ]
        return found


def _matches(pattern: re.Pattern[str], text: str, rank: int, entity: str, extractor: str) -> list[_Candidate]:
    return [
        _Candidate(rank, m.start(), m.end(), entity, m.group(0), extractor)
        for m in pattern.finditer(text)
        if m.end() > m.start()
    ]


def _alternation(values: Sequence[str]) -> re.Pattern[str]:
    ordered = sorted({v.strip() for v in values if v.strip()}, key=len, reverse=True)
    return re.compile(r"(?<!\w)(?:" + "|".join(re.escape(v) for v in ordered) + r")(?!\w)", re.IGNORECASE)


def _phone_value(raw: str) -> str:
    digits = "".join(ch for ch in raw if ch.isdigit())
    return ("+" if raw.lstrip().startswith("+") else "") + digits
