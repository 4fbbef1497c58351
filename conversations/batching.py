"""Group commit: requests made concurrently run as one bulk store command.

A :class:`Batcher` keeps at most one bulk command in flight. The first request after an idle
moment goes out at once (no added latency when the router is quiet); requests that arrive while
a command is in flight wait for it and then go out together in the next one. Under load the
batches grow by themselves, so the store sees one command for many messages — the way databases
group commits to their log.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

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
        future: asyncio.Future[Res] = asyncio.get_running_loop().create_future()
        self._waiting.append((request, future))
        if not self._flushing:
            self._flushing = True
            asyncio.get_running_loop().call_soon(self._start)
        return await future

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
