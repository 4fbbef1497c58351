"""The NLU layer's records: training examples and data, entities, and a parse result.

``TrainingData`` is what the formats read and write (Rasa YAML, JSONL) and what the engine trains
on; ``Parse`` is what every engine (embedded or a remote Rasa server) answers for one text.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

OUT_OF_SCOPE = "out_of_scope"


@dataclass(frozen=True, slots=True)
class Entity:
    """One entity found in (or annotated on) a text: ``text[start:end]`` means ``value``."""

    entity: str
    value: str
    start: int
    end: int
    extractor: str = "annotation"
    role: str | None = None
    group: str | None = None

    def to_doc(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "entity": self.entity,
            "value": self.value,
            "start": self.start,
            "end": self.end,
            "extractor": self.extractor,
        }
        if self.role:
            doc["role"] = self.role
        if self.group:
            doc["group"] = self.group
        return doc


@dataclass(frozen=True, slots=True)
class Example:
    """One training utterance: plain ``text`` (annotations removed) with its intent."""

    text: str
    intent: str
    entities: tuple[Entity, ...] = ()
    language: str | None = None
    source: str | None = None  # "file:line", for error messages and reports


@dataclass
class TrainingData:
    """Examples plus the Rasa-style entity resources: synonyms, regexes and lookup tables."""

    examples: list[Example] = field(default_factory=list)
    synonyms: dict[str, list[str]] = field(default_factory=dict)  # canonical value -> variants
    regexes: dict[str, list[str]] = field(default_factory=dict)  # entity name -> patterns
    lookups: dict[str, list[str]] = field(default_factory=dict)  # entity name -> values

    def merge(self, other: TrainingData) -> TrainingData:
        """Everything of ``self`` and ``other`` (lists are joined, duplicates dropped)."""
        merged = TrainingData(examples=[*self.examples, *other.examples])
        for mine, theirs, into in (
            (self.synonyms, other.synonyms, merged.synonyms),
            (self.regexes, other.regexes, merged.regexes),
            (self.lookups, other.lookups, merged.lookups),
        ):
            for key in [*mine, *theirs]:
                into[key] = list(dict.fromkeys([*mine.get(key, []), *theirs.get(key, [])]))
        return merged

    @property
    def intents(self) -> list[str]:
        return sorted({example.intent for example in self.examples})

    @property
    def languages(self) -> list[str]:
        return sorted({example.language for example in self.examples if example.language})

    def synonym_map(self) -> dict[str, str]:
        """Lower-cased variant -> canonical value (annotated values count as variants too)."""
        mapping = {variant.lower(): canonical for canonical, variants in self.synonyms.items() for variant in variants}
        for example in self.examples:
            for ent in example.entities:
                surface = example.text[ent.start : ent.end]
                if surface and surface != ent.value:
                    mapping.setdefault(surface.lower(), ent.value)
        return mapping

    def entity_values(self) -> dict[str, list[str]]:
        """Lookup tables plus every annotated surface text, per entity name."""
        values: dict[str, list[str]] = {name: list(items) for name, items in self.lookups.items()}
        for example in self.examples:
            for ent in example.entities:
                values.setdefault(ent.entity, []).append(example.text[ent.start : ent.end])
        return {name: list(dict.fromkeys(v for v in items if v.strip())) for name, items in values.items()}


@dataclass(frozen=True, slots=True)
class Parse:
    """What an NLU engine made of one text.

    ``intent`` is ``out_of_scope`` when nothing matched well enough; ``ambiguous`` when the top
    two intents were too close to tell apart (``ranking`` holds them, best first).
    """

    text: str
    intent: str
    confidence: float
    entities: tuple[Entity, ...] = ()
    ranking: tuple[tuple[str, float], ...] = ()
    language: str | None = None
    ambiguous: bool = False
    engine: str = "embedded"
    model_version: str | None = None

    @property
    def out_of_scope(self) -> bool:
        return self.intent == OUT_OF_SCOPE

    def to_doc(self) -> dict[str, Any]:
        """The stored form (on the message): no text, it is on the message already."""
        return {
            "intent": self.intent,
            "confidence": round(self.confidence, 4),
            "entities": [ent.to_doc() for ent in self.entities],
            "ranking": [{"intent": name, "confidence": round(conf, 4)} for name, conf in self.ranking],
            "language": self.language,
            "ambiguous": self.ambiguous,
            "engine": self.engine,
            "model_version": self.model_version,
        }

    @classmethod
    def from_doc(cls, text: str, doc: Mapping[str, Any]) -> Parse:
        return cls(
            text=text,
            intent=str(doc["intent"]),
            confidence=float(doc["confidence"]),
            entities=tuple(_entity(item) for item in doc.get("entities", [])),
            ranking=tuple((str(r["intent"]), float(r["confidence"])) for r in doc.get("ranking", [])),
            language=doc.get("language"),
            ambiguous=bool(doc.get("ambiguous", False)),
            engine=str(doc.get("engine", "embedded")),
            model_version=doc.get("model_version"),
        )


def _entity(doc: Mapping[str, Any]) -> Entity:
    return Entity(
        entity=str(doc["entity"]),
        value=str(doc["value"]),
        start=int(doc["start"]),
        end=int(doc["end"]),
        extractor=str(doc.get("extractor", "annotation")),
        role=doc.get("role"),
        group=doc.get("group"),
    )


def stratified_folds(examples: list[Example], k: int, seed: int = 0) -> list[list[Example]]:
    """A stratified k-fold split: each intent's examples are shuffled and dealt round-robin to the
    folds, the deal continuing across intents so the folds stay even."""
    by_intent: dict[str, list[Example]] = defaultdict(list)
    for example in examples:
        by_intent[example.intent].append(example)
    rng = random.Random(seed)
    dealt: list[list[Example]] = [[] for _ in range(k)]
    position = 0
    for intent in sorted(by_intent):
        items = by_intent[intent][:]
        rng.shuffle(items)
        for item in items:
            dealt[position % k].append(item)
            position += 1
    return dealt
