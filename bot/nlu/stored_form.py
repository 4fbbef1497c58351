"""The stored form of training data (``nlu_examples`` documents and the entity resources of the
``nlu_data`` document) and back: what ``training_set`` writes and reads."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bot.nlu.data import Entity, Example, TrainingData


def entity_docs(entities: Sequence[Entity]) -> list[dict[str, Any]]:
    return [{k: v for k, v in e.to_doc().items() if k != "extractor"} for e in entities]


def example_doc(example: Example, source: str, message_id: str | None = None) -> dict[str, Any]:
    """The stored form of an example (``source``: file, console, api, import, learned)."""
    doc: dict[str, Any] = {
        "text": example.text,
        "intent": example.intent,
        "language": example.language,
        "entities": entity_docs(example.entities),
        "source": source,
    }
    if message_id:
        doc["message_id"] = message_id
    return doc


def example_of(doc: Mapping[str, Any]) -> Example:
    entities = tuple(
        Entity(
            str(e["entity"]), str(e["value"]), int(e["start"]), int(e["end"]), role=e.get("role"), group=e.get("group")
        )
        for e in doc.get("entities") or []
    )
    return Example(str(doc["text"]), str(doc["intent"]), entities, doc.get("language"), "store")


def resources_doc(data: TrainingData) -> dict[str, Any]:
    """Synonyms, regexes and lookups as lists of {name, values} (their names may hold dots)."""
    return {
        kind: [{"name": name, "values": values} for name, values in table.items()]
        for kind, table in (("synonyms", data.synonyms), ("regexes", data.regexes), ("lookups", data.lookups))
    }


def resource_table(doc: Mapping[str, Any], kind: str) -> dict[str, list[str]]:
    return {str(item["name"]): [str(v) for v in item["values"]] for item in doc.get(kind) or []}
