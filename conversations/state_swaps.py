"""The bot's dialogue state written versioned, concurrent writes of many threads in one command.

A swap replaces a thread's ``nlu_state`` numbered ``version + 1`` only if it is still at
``version``. Each bot-answered message makes one; alone they were one ``update`` command each,
the most expensive command of the message path for the router's CPU. Swaps made while one
command is in flight go out together as one unordered ``bulk_write`` (``batching.Batcher``).

A bulk write reports how many of its updates matched, not which. Of several swaps of one thread
in a batch at most one can hold: only the one of the newest version goes out, the others are
reported lost at once. When every swap sent matched, each holds; otherwise the batch's threads
are read back (their state's version and token only) before the next batch goes out, and a
swap holds if its thread carries the swap's own write token (``w``, new for every attempt: two
dispatches of one message, as after a lapsed lease, write the same ``by`` and must not both
think they wrote). A thread read back at a later version than the swap's may have taken it and
moved on since; that swap is reported lost, and the dispatcher, finding its own step in the
state it reads again, carries it out without writing the message's activity a second time.
A write concern error fails the whole batch (its writes may be rolled back).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pymongo import UpdateOne
from pymongo.errors import BulkWriteError, OperationFailure

from conversations.batching import Batcher, RunBatch
from conversations.thread_models import Activity


@dataclass(frozen=True, slots=True)
class Swap:
    """One versioned write of a thread's dialogue state, with the message's activity if given."""

    thread_id: str
    version: int
    state: Mapping[str, Any]
    activity: Activity | None = None
    token: str = field(default_factory=lambda: secrets.token_hex(8))  # this attempt's, in the state written

    @property
    def by(self) -> Any:
        return self.state.get("by")

    def query(self) -> dict[str, Any]:
        """The thread, still at ``version`` and not erased."""
        current: dict[str, Any] = {"nlu_state.v": self.version} if self.version else {"nlu_state.v": {"$exists": False}}
        return {"_id": self.thread_id, "erased_at": {"$exists": False}, **current}

    def update(self) -> dict[str, Any]:
        return {
            **(self.activity.update() if self.activity else {}),
            "$set": {"nlu_state": {**self.state, "v": self.version + 1, "w": self.token}},
        }

    def held(self, found: Mapping[str, Any] | None) -> bool:
        """Whether the thread read back after the batch (``found``) carries this swap."""
        found = found or {}
        # read back with a projection of the version and token: MongoDB nests the fields, the
        # embedded server answers with flat dotted keys
        state = found.get("nlu_state") or {"v": found.get("nlu_state.v"), "w": found.get("nlu_state.w")}
        return bool(state.get("v") == self.version + 1 and state.get("w") == self.token)


class StateSwaps:
    """Versioned dialogue-state writes of the threads collection, batched across messages."""

    def __init__(self, threads: Any, batcher: Callable[[RunBatch[Swap, bool]], Batcher[Swap, bool]]) -> None:
        """``threads``: the collection; ``batcher``: makes (or finds) the batcher of the store
        client that runs the batches (``StoreClient.batcher``)."""
        self._threads = threads
        self._batcher = batcher(self._run)

    async def swap(self, swap: Swap) -> bool:
        """``True`` if the swap was written; ``False`` if the thread moved on (or was erased)."""
        if swap.by is None:  # nothing to tell it from another swap by: written alone
            result = await self._threads.update_one(swap.query(), swap.update())
            return bool(result.matched_count == 1)
        return await self._batcher.submit(swap)

    async def _run(self, swaps: Sequence[Swap]) -> list[bool | BaseException]:
        # of one thread's swaps in a batch at most one can hold: the newest goes out, the others
        # are lost at once (decided again) and leave the count of matches telling
        chosen: dict[str, int] = {}
        for n, swap in enumerate(swaps):
            first = chosen.setdefault(swap.thread_id, n)
            if swap.version > swaps[first].version:
                chosen[swap.thread_id] = n
        sent = sorted(chosen.values())
        outcome: list[bool | BaseException] = [False] * len(swaps)
        for n in sent:
            outcome[n] = True
        try:
            result = await self._threads.bulk_write(
                [UpdateOne(swaps[n].query(), swaps[n].update()) for n in sent], ordered=False
            )
            if result.matched_count == len(sent):
                return outcome
        except BulkWriteError as exc:  # a swap the store refused alone fails alone
            if exc.details.get("writeConcernErrors"):  # not durably written: none sent holds
                return [exc if went_out else False for went_out in outcome]
            for error in exc.details.get("writeErrors", []):
                outcome[sent[error["index"]]] = OperationFailure(
                    error.get("errmsg", "write failed"), error.get("code"), error
                )
        ids = [swaps[n].thread_id for n in sent]
        found = {
            doc["_id"]: doc
            for doc in await self._threads.find({"_id": {"$in": ids}}, {"nlu_state.v": 1, "nlu_state.w": 1}).to_list()
        }
        for n in sent:
            if not isinstance(outcome[n], BaseException):
                outcome[n] = swaps[n].held(found.get(swaps[n].thread_id))
        return outcome
