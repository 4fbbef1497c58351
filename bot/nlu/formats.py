"""Training data files: Rasa's NLU YAML and JSON lines, read and written.

Rasa YAML (``nlu:`` with ``intent``, ``synonym``, ``regex`` and ``lookup`` items, examples as a
``|`` block of ``- text`` lines with ``[surface](entity)``, ``[surface](entity:value)`` or
``[surface]{"entity": ..., "value": ...}`` annotations) so teams can bring their Rasa data.
JSONL: one ``{"text": ..., "intent": ..., "entities"?: [...], "language"?: ...}`` per line.

A file's language comes from its name (``lv.yml``, ``faq.ru.yml``, ``en.jsonl``) unless an
intent's ``metadata`` or a JSONL line names one. Anything wrong stops reading with a
:class:`NluFormatError` that names the file, the line and the problem.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from bot.nlu.data import Entity, Example, TrainingData

SUFFIXES = (".yml", ".yaml", ".jsonl")
_ANNOTATION = re.compile(
    r"\[(?P<text>[^\]]+)\]"
    r"(?:\((?P<entity>[^:)]+)(?::(?P<value>[^)]+))?\)|(?P<json>\{[^}]*\}))"
)
_LANGUAGE = re.compile(r"^[a-z]{2}$")
_ITEM_KINDS = ("intent", "synonym", "regex", "lookup")


class NluFormatError(ValueError):
    """A training data file is wrong; ``str()`` is ``file:line: what is wrong``."""

    def __init__(self, path: str | Path, line: int, problem: str) -> None:
        super().__init__(f"{path}:{line}: {problem}")
        self.path = str(path)
        self.line = line
        self.problem = problem


def language_of(path: Path) -> str | None:
    """``lv.yml`` -> ``lv``, ``faq.ru.jsonl`` -> ``ru``; ``None`` when the name says nothing."""
    parts = path.name.split(".")
    for part in reversed(parts[:-1]):
        if _LANGUAGE.match(part):
            return part
    return None


def data_files(paths: Iterable[str | Path]) -> list[Path]:
    """The training files named, directories expanded (sorted, recursively)."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.suffix in SUFFIXES and p.is_file())
        elif path.exists():
            found.append(path)
        else:
            raise NluFormatError(path, 0, "no such file or directory")
    return found


def load_paths(paths: Iterable[str | Path]) -> TrainingData:
    """Read every training file under ``paths`` into one ``TrainingData``."""
    data = TrainingData()
    for path in data_files(paths):
        data = data.merge(load_file(path))
    return data


def load_file(path: Path, language: str | None = None) -> TrainingData:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise NluFormatError(path, 1, f"not UTF-8 text ({exc.reason})") from None
    except OSError as exc:
        raise NluFormatError(path, 0, f"cannot be read: {exc.strerror}") from None
    language = language or language_of(path)
    if path.suffix == ".jsonl":
        return read_jsonl(text, str(path), language)
    return read_rasa_yaml(text, str(path), language)


# --- JSON lines --------------------------------------------------------------------------------


def read_jsonl(text: str, name: str = "<jsonl>", language: str | None = None) -> TrainingData:
    examples = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise NluFormatError(name, number, f"not valid JSON: {exc.msg}") from None
        if not isinstance(item, dict):
            raise NluFormatError(name, number, "each line must be a JSON object")
        utterance, intent = item.get("text"), item.get("intent")
        if not isinstance(utterance, str) or not utterance.strip():
            raise NluFormatError(name, number, '"text" must be a non-empty string')
        if not isinstance(intent, str) or not intent.strip():
            raise NluFormatError(name, number, '"intent" must be a non-empty string')
        lang = item.get("language", language)
        if lang is not None and not isinstance(lang, str):
            raise NluFormatError(name, number, '"language" must be a string')
        entities = tuple(_jsonl_entity(e, utterance, name, number) for e in item.get("entities") or [])
        examples.append(Example(utterance.strip(), intent.strip(), entities, lang, f"{name}:{number}"))
    return TrainingData(examples=examples)


def _jsonl_entity(item: Any, text: str, name: str, number: int) -> Entity:
    try:
        start, end = int(item["start"]), int(item["end"])
        entity = str(item["entity"])
    except (KeyError, TypeError, ValueError):
        raise NluFormatError(name, number, 'each entity needs "entity", "start" and "end"') from None
    if not 0 <= start < end <= len(text):
        raise NluFormatError(name, number, f"entity {entity!r} span {start}-{end} is outside the text")
    return Entity(entity, str(item.get("value", text[start:end])), start, end)


def write_jsonl(data: TrainingData) -> str:
    lines = []
    for example in data.examples:
        item: dict[str, Any] = {"text": example.text, "intent": example.intent}
        if example.entities:
            item["entities"] = [
                {"entity": e.entity, "value": e.value, "start": e.start, "end": e.end} for e in example.entities
            ]
        if example.language:
            item["language"] = example.language
        lines.append(json.dumps(item, ensure_ascii=False))
    return "\n".join(lines) + ("\n" if lines else "")


# --- Rasa YAML ---------------------------------------------------------------------------------


def read_rasa_yaml(text: str, name: str = "<yaml>", language: str | None = None) -> TrainingData:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        raise NluFormatError(name, line, f"not valid YAML: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise NluFormatError(name, 1, f"not valid YAML: {exc}") from None
    data = TrainingData()
    if root is None:
        return data
    if not isinstance(root, MappingNode):
        raise NluFormatError(name, _line(root), "the file must be a mapping with an `nlu:` key")
    for key, value in root.value:
        if _scalar(key) != "nlu":
            continue  # version, stories, rules, responses...: not training data for the NLU
        if isinstance(value, ScalarNode) and value.value in ("", "null", "~"):
            continue
        if not isinstance(value, SequenceNode):
            raise NluFormatError(name, _line(value), "`nlu:` must be a list of items")
        for item in value.value:
            _read_item(item, name, language, data)
    return data


def _read_item(item: Node, name: str, language: str | None, data: TrainingData) -> None:
    if not isinstance(item, MappingNode):
        raise NluFormatError(name, _line(item), "each `nlu:` item must be a mapping (e.g. `- intent: greet`)")
    fields = {_scalar(k): (k, v) for k, v in item.value}
    kinds = [kind for kind in _ITEM_KINDS if kind in fields]
    if len(kinds) != 1:
        raise NluFormatError(name, _line(item), "each item needs exactly one of intent, synonym, regex, lookup")
    unknown = set(fields) - {*_ITEM_KINDS, "examples", "metadata"}
    if unknown:
        key = sorted(unknown)[0]
        raise NluFormatError(name, _line(fields[key][0]), f"unknown key {key!r} in an `nlu:` item")
    kind = kinds[0]
    label = _scalar(fields[kind][1])
    if not label:
        raise NluFormatError(name, _line(fields[kind][1]), f"`{kind}:` needs a name")
    if "examples" not in fields:
        raise NluFormatError(name, _line(item), f"{kind} {label!r} has no `examples:`")
    metadata = _metadata(fields.get("metadata"), name)
    lang = metadata.get("language", language)
    lines = list(_example_lines(fields["examples"][1], name))
    if not lines:
        raise NluFormatError(name, _line(fields["examples"][1]), f"{kind} {label!r} has no examples")
    if kind == "intent":
        for number, line in lines:
            plain, entities = parse_annotations(line, name, number)
            data.examples.append(Example(plain, label, entities, lang, f"{name}:{number}"))
    elif kind == "regex":
        for number, line in lines:
            try:
                re.compile(line)
            except re.error as exc:
                raise NluFormatError(name, number, f"regex {label!r}: {exc}") from None
        data.regexes.setdefault(label, []).extend(line for _, line in lines)
    else:
        target = data.synonyms if kind == "synonym" else data.lookups
        target.setdefault(label, []).extend(line for _, line in lines)


def _metadata(field: tuple[Node, Node] | None, name: str) -> dict[str, Any]:
    if field is None:
        return {}
    node = field[1]
    if not isinstance(node, MappingNode):
        raise NluFormatError(name, _line(node), "`metadata:` must be a mapping")
    return {_scalar(k): _scalar(v) for k, v in node.value if isinstance(v, ScalarNode)}


def _example_lines(node: Node, name: str) -> Iterator[tuple[int, str]]:
    """(line number, example text) for a ``|`` block of ``- text`` lines or a YAML list."""
    if isinstance(node, SequenceNode):
        for entry in node.value:
            if isinstance(entry, MappingNode):
                fields = {_scalar(k): v for k, v in entry.value}
                entry = fields.get("text", entry)
            if not isinstance(entry, ScalarNode) or not entry.value.strip():
                raise NluFormatError(name, _line(entry), "each example must be a non-empty string")
            yield _line(entry), entry.value.strip()
        return
    if not isinstance(node, ScalarNode):
        raise NluFormatError(name, _line(node), "`examples:` must be a `|` block of `- ` lines")
    block = node.style in ("|", ">")
    first = node.start_mark.line + (2 if block else 1)
    for offset, raw in enumerate(node.value.split("\n")):
        line = raw.strip()
        number = first + offset if block else first
        if not line:
            continue
        if not line.startswith("-"):
            raise NluFormatError(name, number, f"an example must start with '- ', got {line[:40]!r}")
        text = line[1:].strip()
        if not text:
            raise NluFormatError(name, number, "empty example")
        yield number, _unquote(text)


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        return text[1:-1]
    return text


def parse_annotations(line: str, name: str = "<text>", number: int = 0) -> tuple[str, tuple[Entity, ...]]:
    """``"ship to [Riga](city)"`` -> ``("ship to Riga", (Entity("city", "Riga", 8, 12),))``."""
    plain: list[str] = []
    entities: list[Entity] = []
    position = cursor = 0
    for match in _ANNOTATION.finditer(line):
        plain.append(line[cursor : match.start()])
        position += match.start() - cursor
        surface = match["text"]
        entity, value, role, group = _annotation_fields(match, name, number)
        entities.append(Entity(entity, value or surface, position, position + len(surface), role=role, group=group))
        plain.append(surface)
        position += len(surface)
        cursor = match.end()
    plain.append(line[cursor:])
    text = "".join(plain)
    if "[" in text and "](" in line[cursor:]:
        raise NluFormatError(name, number, "unclosed entity annotation")
    return text.strip(), tuple(entities)


def _annotation_fields(match: re.Match[str], name: str, number: int) -> tuple[str, str | None, str | None, str | None]:
    if match["json"] is None:
        return match["entity"].strip(), (match["value"] or "").strip() or None, None, None
    try:
        spec = json.loads(match["json"])
    except json.JSONDecodeError as exc:
        raise NluFormatError(name, number, f"entity annotation is not valid JSON: {exc.msg}") from None
    if not isinstance(spec, dict) or not isinstance(spec.get("entity"), str):
        raise NluFormatError(name, number, 'an entity annotation {...} needs an "entity" name')
    value = spec.get("value")
    return spec["entity"], None if value is None else str(value), spec.get("role"), spec.get("group")


def annotate(example: Example) -> str:
    """The example's text with its entities written back as Rasa annotations."""
    out, cursor = [], 0
    for ent in sorted(example.entities, key=lambda e: e.start):
        surface = example.text[ent.start : ent.end]
        out.append(example.text[cursor : ent.start])
        if ent.value == surface and not ent.role and not ent.group:
            out.append(f"[{surface}]({ent.entity})")
        else:
            spec: dict[str, str] = {"entity": ent.entity}
            if ent.value != surface:
                spec["value"] = ent.value
            if ent.role:
                spec["role"] = ent.role
            if ent.group:
                spec["group"] = ent.group
            out.append(f"[{surface}]{json.dumps(spec, ensure_ascii=False)}")
        cursor = ent.end
    out.append(example.text[cursor:])
    return "".join(out)


def write_rasa_yaml(data: TrainingData) -> str:
    """Rasa 3 NLU YAML; examples of one intent and language share a block."""
    lines = ['version: "3.1"', "nlu:"]
    blocks: dict[tuple[str, str | None], list[Example]] = {}
    for example in data.examples:
        blocks.setdefault((example.intent, example.language), []).append(example)
    for (intent, language), examples in blocks.items():
        lines.append(f"- intent: {_yaml_scalar(intent)}")
        if language:
            lines += ["  metadata:", f"    language: {_yaml_scalar(language)}"]
        lines.append("  examples: |")
        lines += [f"    - {annotate(example)}" for example in examples]
    for kind, table in (("synonym", data.synonyms), ("regex", data.regexes), ("lookup", data.lookups)):
        for label, values in table.items():
            lines += [f"- {kind}: {_yaml_scalar(label)}", "  examples: |"]
            lines += [f"    - {value}" for value in values]
    return "\n".join(lines) + "\n"


def _yaml_scalar(value: str) -> str:
    dumped: str = yaml.safe_dump(value, allow_unicode=True, default_flow_style=True, width=10_000)
    return dumped.removesuffix("\n...\n").strip()


def _scalar(node: Node) -> str:
    return str(node.value).strip() if isinstance(node, ScalarNode) else ""


def _line(node: Node) -> int:
    return int(node.start_mark.line) + 1
