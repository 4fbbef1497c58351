"""An account's training data as admins edit it (console and API).

Where it lives: until an account's data is first edited, it trains on the starter files
(``nlu.data``) plus any examples added through ``POST /api/nlu/examples``. The first edit (an
example added, changed, moved or deleted, an intent added or deleted, a file imported) copies the
files' examples, intents and entity resources into the store (``nlu_examples`` and one
``nlu_data`` document); from then on the store alone is the account's training data and the files
stay the starter set of new accounts. Examples keep the same ids across that copy (an example's id
derives from the account and its text), so an edit made on a file example lands on its copy.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bot import audit
from bot.nlu.data import OUT_OF_SCOPE, Example, TrainingData
from bot.nlu.formats import NluFormatError, annotate, load_paths, parse_annotations, read_rasa_yaml, write_rasa_yaml
from bot.nlu.responses import Responses
from bot.nlu.stored_form import entity_docs, example_doc, example_of, resource_table, resources_doc
from conversations.agent_models import Agent
from conversations.models import epoch_ms, utcnow
from conversations.repositories import Repositories
from conversations.training import ForeignMessage, example_id

INTENT_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$"
_INTENT = re.compile(INTENT_PATTERN)
MAX_TEXT = 1000


class TrainingSetError(ValueError):
    """An edit that cannot be made; ``str()`` is one line for the admin, ``status`` the HTTP one."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class ExampleView:
    id: str
    intent: str
    text: str  # with its entities as Rasa annotations, as the admin edits it
    language: str | None
    source: str
    message_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "intent": self.intent,
            "text": self.text,
            "language": self.language,
            "source": self.source,
            "message_id": self.message_id,
        }


@dataclass(frozen=True)
class IntentSummary:
    name: str
    examples: int
    languages: tuple[str, ...]  # the languages it has responses in
    escalates: bool


def check_intent(name: str) -> str:
    name = name.strip()
    if not _INTENT.match(name):
        raise TrainingSetError(f"intent name {name[:80]!r}: 1-64 of A-Z a-z 0-9 _ . - (not starting with . or -)")
    return name


def _view(account_id: str, doc: Mapping[str, Any]) -> ExampleView:
    example = example_of(doc)
    return ExampleView(
        str(doc.get("_id") or example_id(account_id, example.text)),
        example.intent,
        annotate(example),
        example.language,
        str(doc.get("source") or "api"),
        doc.get("message_id"),
    )


def parse_text(text: str) -> Example:
    """An example's text as typed (Rasa annotations allowed), checked; intent left empty."""
    text = text.strip()
    if not text or len(text) > MAX_TEXT:
        raise TrainingSetError(f"an example is 1 to {MAX_TEXT} characters of text")
    try:
        plain, entities = parse_annotations(text, "example", 1)
    except NluFormatError as exc:
        raise TrainingSetError(exc.problem) from None
    if not plain:
        raise TrainingSetError("an example needs some text")
    return Example(plain, "", entities)


class TrainingSet:
    """One account's training data: read it, edit it, import and export it as Rasa YAML."""

    def __init__(
        self,
        store: Repositories,
        account_id: str,
        paths: Sequence[str],
        responses: Responses | None = None,
        actor: Agent | str = audit.SYSTEM,
    ) -> None:
        self._store = store
        self.account_id = account_id
        self._paths = list(paths)
        self.responses = responses or Responses()
        self._actor = actor  # who the audit log names for the edits

    async def _audit(self, action: str, target: str, **details: Any) -> None:
        """An entry of the edit: ids and intent names, never an example's text."""
        await audit.record(self._store, self.account_id, self._actor, action, target, **details)

    async def _files(self) -> TrainingData:
        if not self._paths:
            return TrainingData()
        return await asyncio.get_running_loop().run_in_executor(None, load_paths, self._paths)

    async def in_store(self) -> bool:
        """Whether the store alone holds the account's data (it has been edited)."""
        doc = await self._store.training.nlu_data(self.account_id)
        return doc is not None and "seeded_at" in doc

    async def ensure_in_store(self) -> None:
        """Copy the files' data into the store, once, before the first edit."""
        if await self.in_store():
            return
        files = await self._files()
        now = utcnow()
        await self._store.training.insert_nlu_examples(
            self.account_id, [example_doc(e, "file") for e in files.examples], now
        )
        counts = await self._store.training.nlu_intent_counts(self.account_id)
        intents = {*files.intents, *counts, *self.responses.texts}
        await self._store.training.save_nlu_data(
            self.account_id, now, seeded_at=epoch_ms(now), intents=sorted(intents), **resources_doc(files)
        )

    async def data(self) -> TrainingData:
        """What the account trains on."""
        return (await self.data_and_sources())[0]

    async def data_and_sources(self) -> tuple[TrainingData, tuple[str, ...]]:
        """What the account trains on, and the customer messages its examples were learned from
        (a model version records them: erasing one of them retires the version)."""
        doc = await self._store.training.nlu_data(self.account_id)
        docs = await self._store.training.nlu_examples_of(self.account_id)
        sources = tuple(sorted({str(d["message_id"]) for d in docs if d.get("message_id")}))
        stored = TrainingData(examples=[example_of(d) for d in docs])
        if doc is None or "seeded_at" not in doc:
            return (await self._files()).merge(stored), sources
        return stored.merge(
            TrainingData(
                synonyms=resource_table(doc, "synonyms"),
                regexes=resource_table(doc, "regexes"),
                lookups=resource_table(doc, "lookups"),
            )
        ), sources

    async def examples(self, intent: str | None = None) -> list[ExampleView]:
        if await self.in_store():
            return [
                _view(self.account_id, d) for d in await self._store.training.nlu_examples_of(self.account_id, intent)
            ]
        views: dict[str, ExampleView] = {}
        for example in (await self._files()).examples:
            views.setdefault(
                example_id(self.account_id, example.text), _view(self.account_id, example_doc(example, "file"))
            )
        for doc in await self._store.training.nlu_examples_of(self.account_id):
            views[str(doc["_id"])] = _view(self.account_id, doc)
        return [v for v in views.values() if intent is None or v.intent == intent]

    async def intent_names(self) -> list[str]:
        doc = await self._store.training.nlu_data(self.account_id)
        if doc is not None and "seeded_at" in doc:
            declared = set(doc.get("intents") or [])
        else:
            declared = {*(await self._files()).intents, *self.responses.texts}
        return sorted(declared | set(await self._store.training.nlu_intent_counts(self.account_id)))

    async def intents(self) -> list[IntentSummary]:
        counts: dict[str, int] = {}
        for view in await self.examples():
            counts[view.intent] = counts.get(view.intent, 0) + 1
        return [
            IntentSummary(
                name,
                counts.get(name, 0),
                tuple(sorted(self.responses.texts.get(name, {}))),
                name in self.responses.escalate,
            )
            for name in await self.intent_names()
        ]

    async def require_intent(self, name: str) -> str:
        if name not in await self.intent_names():
            raise TrainingSetError(f"no intent {name[:80]!r}", 404)
        return name

    # --- edits ----------------------------------------------------------------------------

    async def add_intent(self, name: str) -> str:
        name = check_intent(name)
        names = await self.intent_names()
        if name in names:
            raise TrainingSetError(f"intent {name!r} exists already", 409)
        await self.ensure_in_store()
        await self._store.training.set_nlu_intents(self.account_id, [*names, name], utcnow())
        await self._audit("nlu.intent.create", name)
        return name

    async def delete_intent(self, name: str) -> int:
        await self.require_intent(name)
        await self.ensure_in_store()
        removed = await self._store.training.delete_nlu_intent_examples(self.account_id, name)
        await self._store.training.set_nlu_intents(
            self.account_id, [n for n in await self.intent_names() if n != name], utcnow()
        )
        await self._audit("nlu.intent.delete", name, examples=removed)
        return removed

    async def add_example(
        self,
        intent: str,
        text: str,
        language: str | None = None,
        *,
        message_id: str | None = None,
        source: str = "console",
    ) -> ExampleView:
        """Add one example; 409 when the text is an example already (of any intent)."""
        parsed = parse_text(text)
        if intent != OUT_OF_SCOPE:
            await self.require_intent(intent)
        await self.ensure_in_store()
        example = Example(parsed.text, intent, parsed.entities, language or None)
        doc = example_doc(example, source, message_id)
        try:
            inserted = await self._store.training.insert_nlu_examples(self.account_id, [doc], utcnow())
        except ForeignMessage as exc:
            raise TrainingSetError(str(exc)) from None
        if not inserted:
            held = await self._store.training.nlu_example(self.account_id, example_id(self.account_id, example.text))
            where = held["intent"] if held else "another intent"
            raise TrainingSetError(f"this text is an example of {where} already", 409)
        added = example_id(self.account_id, example.text)
        await self._audit("nlu.example.add", added, intent=intent, source=source)
        return _view(self.account_id, {"_id": added, **doc})

    async def example(self, example: str, intent: str | None = None) -> ExampleView:
        found = next((v for v in await self.examples(intent) if v.id == example), None)
        if found is None:
            raise TrainingSetError(f"no example {example[:80]!r}" + (f" of intent {intent!r}" if intent else ""), 404)
        return found

    async def edit_example(
        self,
        example: str,
        *,
        text: str | None = None,
        intent: str | None = None,
        language: str | None = None,
        of_intent: str | None = None,
    ) -> ExampleView:
        """Change an example's text or language, or move it to another intent."""
        current = await self.example(example, of_intent)
        if intent is not None and intent != current.intent and intent != OUT_OF_SCOPE:
            await self.require_intent(intent)
        await self.ensure_in_store()
        target = intent or current.intent
        lang = current.language if language is None else (language or None)
        parsed = parse_text(text if text is not None else current.text)
        if example_id(self.account_id, parsed.text) == example or text is None:
            updated = await self._store.training.update_nlu_example(
                self.account_id,
                example,
                utcnow(),
                text=parsed.text,
                intent=target,
                language=lang,
                entities=entity_docs(parsed.entities),
            )
            if updated is None:
                raise TrainingSetError(f"no example {example[:80]!r}", 404)
            await self._audit(
                "nlu.example.edit",
                example,
                intent=target,
                moved_from=current.intent if target != current.intent else None,
            )
            return _view(self.account_id, updated)
        added = await self.add_example(target, text or "", lang, message_id=current.message_id, source=current.source)
        await self._store.training.delete_nlu_example(self.account_id, example)
        await self._audit("nlu.example.delete", example, intent=current.intent, replaced_by=added.id)
        return added

    async def delete_example(self, example: str, of_intent: str | None = None) -> None:
        await self.example(example, of_intent)
        await self.ensure_in_store()
        await self._store.training.delete_nlu_example(self.account_id, example)
        await self._audit("nlu.example.delete", example, intent=of_intent)

    async def set_examples(self, intent: str, items: Sequence[tuple[str, str | None]]) -> int:
        """Make ``items`` (text, language) the intent's examples, creating the intent if new: the
        others go, texts of other intents move here, those already here stay (with their ids)."""
        if intent not in await self.intent_names():
            await self.add_intent(intent)
        wanted = {example_id(self.account_id, parse_text(text).text): (text, language) for text, language in items}
        for old in await self.examples(intent):
            if old.id not in wanted:
                await self.delete_example(old.id, intent)
        present = {view.id: view for view in await self.examples()}
        for key, (text, language) in wanted.items():
            if key not in present:
                await self.add_example(intent, text, language, source="api")
            elif present[key].intent != intent or present[key].text != text.strip():
                await self.edit_example(key, text=text, intent=intent, language=language)
        return len(wanted)

    # --- files ----------------------------------------------------------------------------

    async def import_yaml(self, text: str, name: str, replace: bool = False) -> tuple[int, int]:
        """Add (or with ``replace``, swap in) a Rasa NLU YAML file's data; (examples added, intents).
        A bad file raises ``NluFormatError`` naming the file, the line and the problem."""
        data = await asyncio.get_running_loop().run_in_executor(None, read_rasa_yaml, text, name)
        for example in data.examples:
            if not _INTENT.match(example.intent):
                line = int((example.source or ":0").rsplit(":", 1)[1])
                raise NluFormatError(name, line, f"intent name {example.intent[:80]!r}: use 1-64 of A-Z a-z 0-9 _ . -")
        if not data.examples and not (data.synonyms or data.regexes or data.lookups):
            raise NluFormatError(name, 1, "no `nlu:` items: nothing to import")
        now = utcnow()
        if replace:
            for intent in await self.intent_names():
                await self._store.training.delete_nlu_intent_examples(self.account_id, intent)
            await self._store.training.save_nlu_data(
                self.account_id, now, seeded_at=epoch_ms(now), intents=data.intents, **resources_doc(data)
            )
        else:
            await self.ensure_in_store()
            merged = (await self.data()).merge(
                TrainingData(synonyms=data.synonyms, regexes=data.regexes, lookups=data.lookups)
            )
            await self._store.training.save_nlu_data(self.account_id, now, **resources_doc(merged))
            await self._store.training.set_nlu_intents(
                self.account_id, [*await self.intent_names(), *data.intents], now
            )
        added = await self._store.training.insert_nlu_examples(
            self.account_id, [example_doc(e, "import") for e in data.examples], now
        )
        await self._audit("nlu.import", self.account_id, file=name[:200], added=len(added), replace=replace)
        return len(added), len(data.intents)

    async def export_yaml(self) -> str:
        return write_rasa_yaml(await self.data())
