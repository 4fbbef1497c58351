"""What the bot says and does, as three YAML texts: the answers per intent and language
(``responses.yml``), the forms, slots, questions and actions (``domain.yml``) and the rules that
start and finish forms (``rules.yml``).

An install starts with the files (``nlu.responses`` and ``dialogue.folder``). An account's admin
edits a copy of them in the console; every change is checked as the files are at start-up and
published as a model version of its own, sharing the trained model of the active one (nothing is
retrained): the answers travel with the model, so activating an older version brings its answers
back. A version without content of its own (trained before any edit) answers with the files.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.nlu.responses import Responses, ResponsesError, parse_responses
from bot.router.dialogue.domain import DOMAIN_FILE, RULES_FILE, Domain, DomainError, parse_domain
from conversations.training import BOT_PARTS

MAX_TEXT = 200_000  # characters of one part: a bot's texts, not a data dump


class ContentError(ValueError):
    """The content is wrong; ``part`` names the text (responses, domain, rules) and the message
    the place and the problem."""

    def __init__(self, part: str, message: str) -> None:
        super().__init__(message)
        self.part = part


@dataclass(frozen=True)
class Bot:
    responses: Responses
    domain: Domain


@dataclass(frozen=True)
class Content:
    responses: str
    domain: str
    rules: str

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> Content:
        return cls(*(str(doc.get(part) or "") for part in BOT_PARTS))

    def to_doc(self) -> dict[str, str]:
        return {"responses": self.responses, "domain": self.domain, "rules": self.rules}

    def parsed(self) -> Bot:
        """The answers and the dialogue, checked as the files are at start-up."""
        for part, text in self.to_doc().items():
            if len(text) > MAX_TEXT:
                raise ContentError(part, f"{part}: longer than {MAX_TEXT:,} characters")
        try:
            responses = parse_responses(self.responses, "responses.yml")
        except ResponsesError as exc:
            raise ContentError("responses", str(exc)) from None
        except (AttributeError, TypeError, KeyError) as exc:  # a shape the loader did not expect
            raise ContentError("responses", f"responses.yml: not the expected shape ({exc})") from None
        try:
            domain = parse_domain(self.domain, self.rules)
        except DomainError as exc:
            raise ContentError("rules" if str(exc).startswith(RULES_FILE) else "domain", str(exc)) from None
        except (AttributeError, TypeError, KeyError) as exc:
            raise ContentError("domain", f"{DOMAIN_FILE} or {RULES_FILE}: not the expected shape ({exc})") from None
        return Bot(responses, domain)


def files_content(responses: Path, folder: Path) -> Content:
    """The install's files as content (a missing file is an empty text: no answers, no forms)."""

    def text(path: Path) -> str:
        return path.read_text(encoding="utf-8") if path.exists() else ""

    return Content(text(responses), text(folder / DOMAIN_FILE), text(folder / RULES_FILE))


def carried_responses(carried: tuple[str, Mapping[str, str]] | None, files: Responses) -> Responses:
    """The answers a model version carries (``NluService.content``), or the files' (``files``)."""
    if carried is None:
        return files
    try:
        return Content.from_doc(carried[1]).parsed().responses
    except ContentError:  # checked when saved: only a release reading it otherwise
        return files
