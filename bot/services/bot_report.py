"""The bot's part of the reports: containment per intent (conversations about an intent that no
human had to take) and what became of the forms (started, completed, abandoned, handed over)."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass

from conversations.reports import Cohort
from conversations.repositories import Repositories


@dataclass(frozen=True)
class IntentRow:
    intent: str
    conversations: int
    contained: int  # never queued for a human

    @property
    def containment(self) -> float:
        return self.contained / self.conversations if self.conversations else 0.0


@dataclass(frozen=True)
class FormRow:
    form: str
    started: int
    completed: int  # every slot collected
    abandoned: int  # cancelled, or left for another question
    handed_off: int  # a human took over from the form (asked for, wrong answers, its action failing)


async def bot_rows(store: Repositories, c: Cohort) -> tuple[list[IntentRow], list[FormRow]]:
    """Per intent (the last one the bot acted on in each conversation) and per form, busiest first."""
    with_intent = {"nlu_state.intent": {"$type": "string"}}
    everyone, contained, steps = await asyncio.gather(
        store.reports.report_counts_by(c, "$nlu_state.intent", only=with_intent),
        store.reports.report_counts_by(c, "$nlu_state.intent", only={**with_intent, "queued_at": {"$exists": False}}),
        store.reports.report_bot_steps(c),
    )
    intents = [IntentRow(intent, n, contained.get(intent, 0)) for intent, n in everyone.items()]
    counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for step, n in steps.items():
        kind, _, form = step.partition(":")
        if kind in ("form", "completed", "cancelled", "left", "handed_off") and form:
            counts[form]["abandoned" if kind in ("cancelled", "left") else kind] += n
    forms = [FormRow(form, c["form"], c["completed"], c["abandoned"], c["handed_off"]) for form, c in counts.items()]
    return (
        sorted(intents, key=lambda r: (-r.conversations, r.intent)),
        sorted(forms, key=lambda r: (-r.started, r.form)),
    )
