"""What becomes of an outbox item whose send failed: rescheduled with exponential backoff and
jitter, never sooner than the provider's ``retry_after``, or, after ``max_attempts`` or on a
permanent error, dead-lettered (visible at ``/api/outbox``, the consoles told). Either way it is
counted and logged with the provider's error redacted: the error text often names the recipient,
and is kept whole only in the item's ``last_error``."""

from __future__ import annotations

import logging
import random
from datetime import timedelta

from bot.logs import log_event, without_contacts
from bot.metrics import Metrics
from bot.sending_settings import OutboxSettings
from conversations.models import utcnow
from conversations.repositories import Repositories
from conversations.thread_models import OutboxItem

log = logging.getLogger("omnirouter.router.outbox")  # the outbox's log lines, wherever they are made


def backoff_delay(
    attempts: int, base: float, cap: float, retry_after: float | None = None, rng: random.Random | None = None
) -> float:
    """Seconds to wait after the ``attempts``-th failure, never less than ``retry_after``.

    The ceiling doubles with every attempt up to ``cap``; the delay is drawn between half the
    ceiling and the ceiling, so retries from many items spread out but still back off.
    """
    ceiling = min(cap, base * 2 ** max(attempts - 1, 0))
    delay = (rng or random).uniform(ceiling / 2, ceiling)
    return max(delay, retry_after or 0.0)


class SendFailures:
    """Retries and dead letters of the outbox items that the worker ``owner`` holds leased."""

    def __init__(self, store: Repositories, metrics: Metrics, settings: OutboxSettings, owner: str) -> None:
        self._store = store
        self._metrics = metrics
        self._settings = settings
        self._owner = owner

    def delay(self, item: OutboxItem, retry_after: float | None) -> float | None:
        """Seconds until the failed item's next attempt; ``None`` when it has no attempt left."""
        if item.attempts >= self._settings.max_attempts:
            return None
        return backoff_delay(item.attempts, self._settings.base_delay, self._settings.max_delay, retry_after)

    async def retry(self, item: OutboxItem, error: str, retry_after: float | None) -> None:
        delay = self.delay(item, retry_after)
        if delay is None:
            await self.dead(item, error)
            return
        await self._store.outbox.retry_outbox(item, self._owner, error, utcnow() + timedelta(seconds=delay))
        self.retried(item, error, delay)

    def retried(self, item: OutboxItem, error: str, delay: float) -> None:
        self._metrics.outbox_retries.labels(item.channel).inc()
        log_event(
            log,
            "outbox.retry",
            logging.WARNING,
            item=item.id,
            channel=item.channel,
            attempts=item.attempts,
            delay=round(delay, 3),
            error=without_contacts(error)[:200],
        )

    async def dead(self, item: OutboxItem, error: str) -> None:
        await self._store.outbox.dead_letter_outbox(item, self._owner, error, utcnow())
        await self.given_up(item, error)

    async def given_up(self, item: OutboxItem, error: str) -> None:
        """A dead letter recorded: the consoles told, counted and logged."""
        await self._store.events.emit_event(item.account_id, "delivery", utcnow(), thread_id=item.thread_id)
        self._metrics.outbound.labels(item.channel, "dead").inc()
        self._metrics.outbox_dead.labels(item.channel).inc()
        log_event(
            log,
            "outbox.dead_letter",
            logging.ERROR,
            item=item.id,
            channel=item.channel,
            attempts=item.attempts,
            error=without_contacts(error)[:200],
        )
