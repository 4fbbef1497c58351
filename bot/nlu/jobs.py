"""Training jobs: a training run in the background with its progress and outcome on a job document
(``nlu_jobs``), read by the console's progress bar and ``GET /api/nlu/jobs/{id}``.

An account runs one job at a time: each training reads all of the account's data, so a second one
would only repeat the first, and a burst of them would take every core (``TrainingRunning``).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from bot.logs import log_event
from bot.nlu.formats import NluFormatError
from bot.nlu.trainer import TrainRequest
from bot.nlu.training import TrainingError
from bot.tasks import wait_set
from conversations.errors import StoreUnavailable
from conversations.models import utcnow
from conversations.nlu_retirement import RETRAIN_LEASE_MS
from conversations.repositories import Repositories

log = logging.getLogger("omnirouter.nlu")
_RENEW_TICKS = max(1, RETRAIN_LEASE_MS // 1500)  # half-second ticks: renewed every third of the lease
# a running job's document is written every half second; one silent this long died with its process
JOB_SILENCE = timedelta(seconds=60)

Progress = Callable[[str, int, int], None]


class TrainingRunning(Exception):
    """A training job of the account is running already (``job``: its id, when known)."""

    def __init__(self, job: str | None) -> None:
        super().__init__("a training of this account is running already")
        self.job = job


class TrainingJobs:
    """Starts and runs training jobs through ``train``; ``waiting()`` says whether a training
    started now would wait for a free slot (its stage is then *queued*)."""

    def __init__(
        self,
        store: Repositories,
        train: Callable[[TrainRequest, Progress], Awaitable[str]],
        waiting: Callable[[], bool],
        spawn: Callable[[Awaitable[None]], None],
        owner: str,
    ) -> None:
        self._store = store
        self._train = train
        self._waiting = waiting
        self._spawn = spawn
        self._owner = owner
        self._starting: set[str] = set()  # accounts whose job is being recorded here

    async def start(self, request: TrainRequest) -> str:
        """Record a training job (so it can be read at once) and run it in the background. Raises
        :class:`TrainingRunning` while another job of the account runs."""
        account_id = request.account_id
        if account_id in self._starting:
            raise TrainingRunning(None)
        self._starting.add(account_id)
        try:
            running = await self._store.nlu.running_nlu_job(account_id, utcnow() - JOB_SILENCE)
            if running is not None:
                raise TrainingRunning(str(running["_id"]))
            job_id = f"job-{uuid.uuid4().hex[:16]}"
            stage = "queued" if self._waiting() else "loading"
            await self._store.nlu.start_nlu_job(job_id, account_id, utcnow(), stage)
        finally:
            self._starting.discard(account_id)
        self._spawn(self.run(job_id, request))
        return job_id

    async def run(self, job_id: str, request: TrainRequest, leased: bool = False) -> None:
        """Train, keeping the progress on the job document every half second (which also says the
        job is alive); a ``leased`` job's lease (a retraining's) is renewed meanwhile."""
        latest: dict[str, Any] = {"stage": "queued"} if self._waiting() else {}

        def progress(stage: str, done: int, total: int) -> None:
            latest.update(stage=stage, done=done, total=total)

        finished = asyncio.Event()

        async def publish() -> None:
            for tick in itertools.count(1):
                if await wait_set(finished, 0.5):
                    return
                try:  # progress is best effort; the end is not
                    await self._store.nlu.update_nlu_job(job_id, utcnow(), **latest)
                    if leased and tick % _RENEW_TICKS == 0:
                        await self._store.nlu.renew_nlu_retrain(job_id, self._owner, utcnow())
                except StoreUnavailable:
                    pass
                except Exception:
                    log.exception("nlu.progress_unsaved", extra={"omnirouter_fields": {"job": job_id}})

        publisher = asyncio.create_task(publish())
        try:
            version = await self._train(request, progress)
            result: dict[str, Any] = {"state": "done", "version": version, "stage": "done", "done": 1, "total": 1}
            metrics = ((await self._store.nlu.get_nlu_model(version)) or {}).get("metrics") or {}
            result.update({k: metrics[k] for k in ("method", "accuracy", "macro_f1") if k in metrics})
        except (NluFormatError, TrainingError) as exc:
            result = {"state": "failed", "error": str(exc)}
        except Exception as exc:
            log.exception("nlu.training_failed", extra={"omnirouter_fields": {"job": job_id}})
            result = {"state": "failed", "error": f"{type(exc).__name__}: {exc}"}
        finally:
            # told to stop, never cancelled: cancelled inside a store call, the driver can keep a
            # connection-pool lock every later store call waits for; and a progress write still
            # in flight lands before the outcome, not over it
            finished.set()
            await asyncio.wait([publisher])
        await self._finish(job_id, result)

    async def _finish(self, job_id: str, result: dict[str, Any], attempts: int = 30) -> None:
        """Record the job's outcome, riding out a store outage of up to a minute or so: a job left
        "running" would show its progress bar for ever."""
        for attempt in range(attempts):
            try:
                await self._store.nlu.update_nlu_job(job_id, utcnow(), **result)
                return
            except StoreUnavailable:
                log_event(log, "nlu.job_result_unsaved", logging.WARNING, job=job_id, attempt=attempt + 1)
                await asyncio.sleep(min(2.0, 0.1 * 2**attempt))
