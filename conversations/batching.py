"""Group commit: requests made concurrently run as one bulk store command.

A :class:`Batcher` keeps at most one bulk command in flight. The first request after an idle
moment goes out at once (no added latency when the router is quiet); requests that arrive while
a command is in flight wait for it and then go out together in the next one. Under load the
batches grow by themselves, so the store sees one command for many messages — the way databases
group commits to their log. When the command fails because the driver found no store within its
timeout, the requests that waited for it fail with it: a request waits for one such timeout in an
outage, not for the one in flight and then its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar

from pymongo import UpdateOne
from pymongo.errors import BulkWriteError, DuplicateKeyError, OperationFailure, ServerSelectionTimeoutError

from conversations.errors import StoreUnavailable

Req = TypeVar("Req")
Res = TypeVar("Res")

# runs a batch; returns one result per request, or an exception for a request that failed alone
RunBatch = Callable[[Sequence[Req]], Awaitable[Sequence["Res | BaseException"]]]


class Batcher(Generic[Req, Res]):
    def __init__(self, run: RunBatch[Req, Res], max_size: int = 256) -> None:
        self._run = run
        self._max_size = max_size
        self._waiting: list[tuple[Req, asyncio.Future[Res]]] = []
        self._flushing = False
        self._task: asyncio.Task[None] | None = None
        self.batches = 0  # how many bulk commands ran (for tests and benchmarks)
        self.requests = 0

    async def submit(self, request: Req) -> Res:
        return await self.enqueue(request)

    def enqueue(self, request: Req) -> asyncio.Future[Res]:
        """``request`` put in the next batch; the future holds its result. Several requests of
        one caller are waited for together with ``asyncio.gather`` on their futures, which
        makes no task for each (as it would for each ``submit``)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Res] = loop.create_future()
        self._waiting.append((request, future))
        if not self._flushing:
            self._flushing = True
            loop.call_soon(self._start)
        return future

    async def stop(self, timeout: float = 5.0) -> None:
        """Cancel the batch in flight and the requests waiting for the next one, and wait up to
        ``timeout`` for the batch to end (a driver may hold on to a cancellation for a while):
        their callers see the cancellation. A closing client stops its reads so that none is left
        waiting on a closed driver, with nothing holding it but itself."""
        for _, future in self._waiting:
            future.cancel()
        self._waiting = []
        task = self._task
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait([task], timeout=timeout)

    def _start(self) -> None:
        self._task = asyncio.ensure_future(self._drain())

    async def _drain(self) -> None:
        try:
            while self._waiting:
                batch, self._waiting = self._waiting[: self._max_size], self._waiting[self._max_size :]
                await self._run_one(batch)
        finally:
            self._flushing = False

    async def _run_one(self, batch: list[tuple[Req, asyncio.Future[Res]]]) -> None:
        self.batches += 1
        self.requests += len(batch)
        try:
            results = await self._run([request for request, _ in batch])
        except BaseException as exc:  # the whole command failed (an outage): every caller sees it
            if isinstance(exc, ServerSelectionTimeoutError):
                # the driver looked for the store for its whole timeout and found none: the requests
                # that came meanwhile fail with it, rather than wait that long again in the next batch
                batch, self._waiting = batch + self._waiting, []
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            if isinstance(exc, asyncio.CancelledError):
                raise
            return
        for (_, future), result in zip(batch, results, strict=True):
            if future.done():  # the caller was cancelled meanwhile
                continue
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)


class BulkWrites:
    """Writes to one collection made concurrently, sent as one unordered ``bulk_write``.

    ``submit`` takes one PyMongo write (``InsertOne``, ``UpdateOne``) and returns once it is
    applied; a write that fails alone (a duplicate key) raises its own error, and every other
    write of a batch the store did not confirm durably (a replica set's write concern error: the
    writes may be rolled back) raises ``StoreUnavailable``, so a webhook is answered 503 and sent
    again rather than acknowledged and lost. PyMongo sends an
    unordered bulk as one command per kind of write, so a batch of inserts and updates costs two
    round trips whatever its size. The result says whether every update of the batch matched a
    document: ``True`` means this one did; ``False`` means it may not have (ask the store).
    """

    def __init__(self, collection: Any, max_size: int = 512) -> None:
        self._collection = collection
        self._batcher: Batcher[Any, bool] = Batcher(self._run, max_size)

    @property
    def batches(self) -> int:
        return self._batcher.batches

    async def submit(self, write: Any) -> bool:
        return await self._batcher.submit(write)

    def enqueue(self, write: Any) -> asyncio.Future[bool]:
        return self._batcher.enqueue(write)

    async def _run(self, writes: Sequence[Any]) -> list[bool | BaseException]:
        updates = sum(isinstance(w, UpdateOne) for w in writes)
        try:
            result = await self._collection.bulk_write(list(writes), ordered=False)
        except BulkWriteError as exc:
            concern = exc.details.get("writeConcernErrors") or []
            problem = f"the store did not confirm the writes durably: {concern[0].get('errmsg', '')}" if concern else ""
            outcome: list[bool | BaseException] = [StoreUnavailable(problem) if concern else False for _ in writes]
            for error in exc.details.get("writeErrors", []):
                kind = DuplicateKeyError if error.get("code") == 11000 else OperationFailure
                outcome[error["index"]] = kind(error.get("errmsg", "write failed"), error.get("code"), error)
            return outcome
        all_matched = result.matched_count + result.upserted_count == updates  # an upsert matched or inserted
        return [all_matched] * len(writes)
