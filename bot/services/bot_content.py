"""An account's answers, forms and rules as its admins edit them (``bot/router/dialogue/content.py``
says what they are): reading the current texts, changing answers per intent and language, and
publishing a change as a new model version that every router process picks up.

Publishing checks the texts as start-up checks the files (and the actions' timeouts against the
dispatch lease), keeps them as the account's copy (the next trained version carries them too),
and, when the account has an active model, stores a version of its own sharing that model and
activates it: the bot answers with the change within a reload interval in every process, and
activating the previous version brings the previous answers back.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bot import audit
from bot.nlu.service import NluService
from bot.nlu.trainer import new_version
from bot.router.dialogue.content import Bot, Content, ContentError, files_content
from bot.router.dialogue.domain import DomainError, check_timeouts
from bot.settings import Settings
from conversations.agent_models import Agent
from conversations.models import utcnow
from conversations.repositories import Repositories

LINES = ("fallback", "clarify", "handoff")  # the bot's own lines, beside the intents' answers


@dataclass(frozen=True)
class Current:
    content: Content
    edited_by: str | None = None  # None: the install's files
    edited_at: int | None = None  # epoch ms


@dataclass(frozen=True)
class Published:
    version: str | None  # None: no model to carry it yet (the next trained version will)
    bot: Bot


async def current(store: Repositories, settings: Settings, account_id: str) -> Current:
    """The account's copy, or the install's files while it has none."""
    draft = await store.training.bot_draft(account_id)
    if draft is None:
        return Current(files_content(Path(settings.nlu.responses), Path(settings.dialogue.folder)))
    return Current(Content.from_doc(draft), str(draft.get("updated_by") or ""), int(draft.get("updated_at") or 0))


async def publish(
    store: Repositories, nlu: NluService, settings: Settings, account_id: str, content: Content, by: Agent
) -> Published:
    """Check ``content`` (``ContentError``), keep it as the account's copy and put it to work."""
    bot = content.parsed()
    try:
        endpoint = settings.dialogue.action_endpoint
        check_timeouts(
            bot.domain, settings.dialogue.action_timeout if endpoint else None, settings.dispatch.lease_seconds
        )
    except DomainError as exc:
        raise ContentError("domain", str(exc)) from None
    now = utcnow()
    await store.training.save_bot_draft(account_id, content.to_doc(), by.login, now)
    active, version = await store.nlu.active_nlu_version(account_id), new_version()
    published = None
    if active is not None and await store.nlu.derive_nlu_model(
        account_id, active, version, content.to_doc(), by.login, now
    ):
        published = version if await nlu.activate(account_id, version, by.login) else None
    await audit.record(store, account_id, by, "bot.publish", published or "draft")
    return Published(published, bot)


def with_answers(
    content: Content,
    answers: Mapping[str, Mapping[str, list[str]]],
    escalate: set[str],
    lines: Mapping[str, Mapping[str, str]],
) -> Content:
    """``content`` with the intents' answers (intent -> language -> variants; none: the intent
    has no answer in that language), the intents handed to a human and the bot's own lines
    (``LINES``) replaced; everything else in ``responses.yml`` (titles, languages) is kept."""
    try:
        raw: Any = yaml.safe_load(content.responses) or {}
    except yaml.YAMLError as exc:
        raise ContentError("responses", f"responses.yml: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ContentError("responses", "responses.yml: must be a mapping with `intents:`")
    found = raw.get("intents")
    intents: dict[str, Any] = found if isinstance(found, dict) else {}
    for intent, by_language in answers.items():
        kept = intents.get(intent)
        spec: dict[str, Any] = kept if isinstance(kept, dict) else {}
        spec["text"] = {language: variants for language, variants in by_language.items() if variants}
        intents[intent] = spec
    raw["intents"] = intents
    raw["escalate"] = sorted(escalate)
    for kind in LINES:
        raw[kind] = {language: text for language, text in lines.get(kind, {}).items() if text}
    text = yaml.safe_dump(raw, allow_unicode=True, sort_keys=False, width=1000)
    return Content(text, content.domain, content.rules)
