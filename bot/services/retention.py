"""Retention: each account's messages older than its limit are deleted by a scheduled job.

The limit is the account's ``retention_days`` (set by its admin) or, when unset, the install's
``retention.days``; 0 keeps messages for ever. A scheduled job rather than a TTL index: the
embedded store expires TTL documents only lazily, on read, and the job also removes what hangs
off each message (an earlier release's outbox item, e-mail source, SMS parts, NLU examples taken from it) through
the same personal-data holders an erasure uses (so NLU model versions trained on examples learned
from those messages are retired, as by an erasure). Every router process runs the loop; a lease in
the store lets one of them do the work per interval.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from bot import audit
from bot.logs import log_event
from bot.services.contacts import after_retirement
from bot.settings import RetentionSettings
from bot.tasks import pause
from conversations.errors import StoreUnavailable
from conversations.models import epoch_ms, utcnow
from conversations.personal_data import Erasure
from conversations.repositories import Repositories
from conversations.tenant_models import Account

log = logging.getLogger("omnirouter.retention")

JOB = "retention"


def retention_days(account: Account | None, settings: RetentionSettings) -> int:
    """The account's limit in days (0: keep for ever)."""
    if account is not None and account.retention_days is not None:
        return max(0, int(account.retention_days))
    return settings.days


class RetentionJob:
    def __init__(
        self, store: Repositories, settings: RetentionSettings, batch: int = 500, *, retrain: bool = False
    ) -> None:
        self._store = store
        self._settings = settings
        self._batch = batch
        self._retrain = retrain  # queue a retraining when the active NLU model is retired (embedded engine)

    async def purge(self, account: Account, now: datetime) -> int:
        """Delete the account's messages past its limit; returns how many messages went."""
        days = retention_days(account, self._settings)
        if days <= 0:
            return 0
        cutoff = epoch_ms(now - timedelta(days=days))
        erasure = Erasure(id=JOB, at=now)
        deleted = 0
        while (scope := await self._store.privacy.old_messages(account.id, cutoff, self._batch)) is not None:
            counts = await self._store.privacy.erase_personal_data(scope, erasure)
            deleted += counts.get("messages", 0)
            if not counts.get("messages"):
                break  # nothing could be deleted: do not spin
        if deleted:
            models = await after_retirement(self._store, account.id, erasure, self._retrain)
            # on the embedded store: merge the text indexes (they keep deleted messages' terms
            # until merged) and truncate the write-ahead log, as an erasure does
            await self._store.client.checkpoint_embedded()
            await audit.record(
                self._store,
                account.id,
                audit.SYSTEM,
                "retention.purge",
                account.id,
                messages=deleted,
                days=days,
                **models.audit_details(),
            )
            log_event(log, "retention.purged", account=account.id, messages=deleted, days=days)
        return deleted

    async def run_once(self, now: datetime | None = None) -> dict[str, int]:
        """One pass over every account; returns messages deleted per account."""
        now = now or utcnow()
        return {account.id: await self.purge(account, now) for account in await self._store.accounts.list_accounts()}

    async def run(self) -> None:
        """Background loop: at most one pass per ``retention.interval_minutes`` across processes."""
        every = self._settings.interval_minutes * 60
        while True:
            try:
                if await self._store.privacy.claim_job(JOB, epoch_ms(utcnow()), int(every * 1000)):
                    await self.run_once()
            except StoreUnavailable:
                log_event(log, "retention.store_unavailable", logging.WARNING)
            except Exception:  # a bad document must not stop retention for good
                log.exception("retention.failed")
            await pause(min(every, 60.0))
