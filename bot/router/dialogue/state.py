"""The bot's side of one conversation, kept on the thread (``nlu_state``) so that every router
process continues it: the customer's language, the form being filled and its slots, and the
counters the policy needs (misunderstandings in a row, the bot's recent replies).

The language sticks to the conversation: a message with too few words to tell a language by (an
order number, "ok", an e-mail address) keeps it; a sentence in another language switches it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

# words of two letters or more; digits, codes and addresses are no evidence of a language
_WORD = re.compile(r"(?<![\w@.])[^\W\d_]{2,}(?![\w@])")
SWITCH_WORDS = 3  # a message of at least this many words in another language switches it


def conversation_language(previous: str | None, detected: str | None, text: str) -> str | None:
    """The conversation's language after ``text`` (detected as ``detected``, maybe wrongly for a
    short text): the previous one unless the text is a sentence of its own in another language."""
    if detected is None or detected == previous:
        return previous or detected
    words = len(_WORD.findall(text))
    if previous is None:
        return detected if words else None
    return detected if words >= SWITCH_WORDS else previous


@dataclass(frozen=True)
class DialogueState:
    language: str | None = None
    form: str | None = None  # the form being filled
    requested: str | None = None  # the slot last asked for
    attempts: int = 0  # wrong answers to the current question
    slots: Mapping[str, Any] = field(default_factory=dict)
    intent: str | None = None  # the intent the bot last acted on
    # what the bot did in this conversation, for the agent's summary: "kind:subject" (form, completed,
    # cancelled, left, gave_up, handed_off, human, action, action_failed, offline, said)
    tried: tuple[str, ...] = ()  # the last ten
    tally: Mapping[str, int] = field(default_factory=dict)  # every "kind:subject" counted, for the reports
    low_streak: int = 0
    options: Mapping[str, str] = field(default_factory=dict)  # a clarifying question's buttons
    replies_ms: tuple[int, ...] = ()

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> DialogueState:
        return cls(
            language=doc.get("language"),
            form=doc.get("form"),
            requested=doc.get("requested"),
            attempts=int(doc.get("attempts", 0)),
            slots=dict(doc.get("slots") or {}),
            intent=doc.get("intent"),
            tried=tuple(doc.get("tried") or ()),
            tally={str(row["step"]): int(row["n"]) for row in doc.get("tally") or ()},
            low_streak=int(doc.get("low_streak", 0)),
            options=dict(doc.get("options") or {}),
            replies_ms=tuple(int(t) for t in doc.get("replies_ms") or ()),
        )

    def to_doc(self) -> dict[str, Any]:
        return {
            "language": self.language,
            "form": self.form,
            "requested": self.requested,
            "attempts": self.attempts,
            "slots": dict(self.slots),
            "intent": self.intent,
            "tried": list(self.tried[-10:]),
            # a list of {step, n}: the reports add them up with $unwind and $group
            "tally": [{"step": step, "n": n} for step, n in self.tally.items()],
            "low_streak": self.low_streak,
            "options": dict(self.options),
            "replies_ms": list(self.replies_ms),
        }

    def did(self, what: str) -> DialogueState:
        tally = {**self.tally, what: self.tally.get(what, 0) + 1}
        return replace(self, tried=(*self.tried, what)[-10:], tally=tally)

    def without_form(self) -> DialogueState:
        return replace(self, form=None, requested=None, attempts=0)

    def summary(self) -> dict[str, Any]:
        """What an agent taking the conversation over is shown: intent, slots, what the bot tried."""
        return {"intent": self.intent, "form": self.form, "slots": dict(self.slots), "tried": list(self.tried)}
