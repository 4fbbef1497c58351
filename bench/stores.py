"""Where a benchmark's routers keep their data: an embedded store it starts (the default), or any
MongoDB the user gives with ``--mongodb-uri`` (``bench/load.py``), so that they can measure on theirs.

On a MongoDB of the user's the run writes into a database of its own (``omnirouter_bench_<hex>``),
new for every run, and drops it at the end: nothing it writes meets their data, and a second run
does not find the first one's messages (which it would take for duplicate deliveries)."""

from __future__ import annotations

import secrets
from pathlib import Path

from bench.meters import store_pid
from conversations.client import StoreClient
from tests.faults.harness import SharedStore

EMBEDDED_DATABASE = "bench"


class EmbeddedStore(SharedStore):
    """An embedded store (nx-27017) as its own process under ``data_dir``; its CPU is measured."""

    def __init__(self, data_dir: Path) -> None:
        super().__init__(data_dir)
        self.database = EMBEDDED_DATABASE
        self._data_dir = data_dir

    def pid(self) -> int | None:
        return store_pid(self._data_dir)


class ExternalStore:
    """A MongoDB the benchmark does not run (no process of it to measure): a fresh database on it."""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self.database = f"omnirouter_bench_{secrets.token_hex(4)}"

    def pid(self) -> int | None:
        return None

    async def start(self) -> None:
        """Check that the server answers (a wrong URI ends the run here, not in the routers)."""
        client = StoreClient.connect(self.uri, self.database, timeout_ms=10_000)
        try:
            await client.ping()
        finally:
            await client.close()

    async def stop(self) -> None:
        client = StoreClient.connect(self.uri, self.database, timeout_ms=10_000)
        try:
            await client.database.client.drop_database(self.database)
        finally:
            await client.close()


def bench_store(mongodb_uri: str | None, data_dir: Path) -> EmbeddedStore | ExternalStore:
    """The store of one benchmark run: the given MongoDB, or else an embedded one in ``data_dir``."""
    return ExternalStore(mongodb_uri) if mongodb_uri else EmbeddedStore(data_dir)
