"""Response-time targets (SLA) of the human queue. Business hours are parsed in
``bot/business_hours.py``, below the settings that check them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from conversations.thread_models import Thread


@dataclass(frozen=True)
class Sla:
    """Response-time targets: the first agent answer, and every answer after a customer writes."""

    first_response: timedelta
    next_response: timedelta

    def due(self, thread: Thread) -> tuple[str, datetime] | None:
        """Which clock runs on the thread and when it breaches, or ``None`` if none runs."""
        if thread.first_response_at is None:
            start = thread.queued_at or thread.opened_at
            return ("first_response", start + self.first_response) if self.first_response else None
        if thread.awaiting_since is not None and self.next_response:
            return "next_response", thread.awaiting_since + self.next_response
        return None

    def late(self, thread: Thread, now: datetime) -> bool:
        """Whether an agent's reply now misses the next-response target (counted for the reports)."""
        return (
            thread.first_response_at is not None
            and thread.awaiting_since is not None
            and bool(self.next_response)
            and now - thread.awaiting_since > self.next_response
        )
