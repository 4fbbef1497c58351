"""One client of the store (MongoDB, or the embedded server) that every repository shares.

It holds what is per connection rather than per aggregate: the PyMongo client and database, the
group commit of the hot path (one ``BulkWrites`` per collection and the named read ``Batcher``s,
so concurrent messages share one round trip whichever repository they go through), the key that
seals secrets at rest, and the count of round trips (a plain callback: the metrics of a router
process never see the driver).

``Repository`` is the base of the repositories (``conversations/repositories.py`` builds them all
over one client). Its subclasses keep to the subset of MongoDB that holds on real MongoDB and on
the embedded server alike: single-document atomic operations (unique indexes,
``find_one_and_update`` as a claim or lease, upserts through ``update_one``), no multi-document
transactions, no indexes on array fields (the embedded server stops matching array elements once
one exists).
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

import pymongo
from pymongo import AsyncMongoClient, IndexModel, InsertOne, UpdateOne, monitoring
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from conversations.batching import Batcher, BulkWrites, RunBatch
from conversations.errors import translating_outages
from conversations.filters import exactly, is_embedded
from conversations.models import stored
from conversations.sealing import Sealer, SealingError

# collection -> the indexes a repository reads it by
IndexPlan = Mapping[str, Sequence[IndexModel]]
# one write of the message path: an insert or an update, batched with concurrent ones
Write = InsertOne[Any] | UpdateOne

# the deadline of ensure_indexes: building the indexes of a large existing store at start-up
INDEX_BUILD_SECONDS = 900.0
NO_KEY = "this process has no secret key, so it cannot read or write sealed secrets"

Req = TypeVar("Req")
Res = TypeVar("Res")


class _Database(AsyncDatabase[dict[str, Any]]):
    """The database, its collection handles (``database.threads``) made once: PyMongo makes a
    new one at every attribute access, a cost of each store call on the message path."""

    def __getattr__(self, name: str) -> AsyncCollection[dict[str, Any]]:
        collection = super().__getattr__(name)
        self.__dict__[name] = collection  # found without this method from now on
        return collection


class StoreClient:
    """The connection every repository shares. Construct with :meth:`connect`."""

    def __init__(self, client: AsyncMongoClient[dict[str, Any]], database: str, uri: str | None = None) -> None:
        self._client = client
        # for the repositories (and the tests' raw-database fixture): nothing outside
        # conversations/ holds a driver object
        self.database: AsyncDatabase[dict[str, Any]] = _Database(client, database)
        self.uri = uri  # where a child process (training) connects too
        self.sealer: Sealer | None = None
        self._writes: dict[tuple[str, bool], BulkWrites] = {}  # (collection, inserts?)
        self._batchers: dict[str, Batcher[Any, Any]] = {}
        self._embedded: bool | None = None  # asked once; a test sets it to ask MongoDB's forms

    @classmethod
    def connect(
        cls,
        uri: str,
        database: str,
        *,
        timeout_ms: int = 3000,
        on_command: Callable[[str], None] | None = None,
        listeners: Sequence[monitoring.CommandListener] = (),
    ) -> StoreClient:
        """Create the client; no I/O happens until the first operation. ``on_command`` is called
        with the name of every command sent (one store round trip; handshakes left out)."""
        watchers = [*listeners, *([_CommandCounter(on_command)] if on_command else [])]
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
            uri,
            tz_aware=True,
            serverSelectionTimeoutMS=timeout_ms,
            # a store that hangs (rather than refusing connections) must also end in a 503
            socketTimeoutMS=3 * timeout_ms,
            # the driver's heartbeat waits with the connect timeout, and one that times out
            # cancels every operation in flight: it may not give up before they do
            connectTimeoutMS=3 * timeout_ms,
            event_listeners=watchers,
            appname="omnirouter",
        )
        return cls(client, database, uri)

    @property
    def database_name(self) -> str:
        return self.database.name

    async def close(self) -> None:
        for batcher in self._batchers.values():
            await batcher.stop()
        await self._client.close()

    @translating_outages
    async def ping(self) -> None:
        await self.database.command("ping")

    @translating_outages
    async def is_embedded_server(self) -> bool:
        """Whether the server is nx-27017 (however it was reached), which needs polling instead
        of change streams and has the limits described in docs/data.md. Asked once per client
        (``ensure_indexes`` asks at start-up)."""
        if self._embedded is None:
            self._embedded = await is_embedded(self._client)
        return self._embedded

    @translating_outages
    async def checkpoint_embedded(self, attempts: int = 5) -> bool:
        """On the embedded store, copy the write-ahead log into the database file and truncate it,
        so data just deleted leaves no copy behind in the ``-wal`` file (SQLite zeroes the deleted
        content itself: ``secure_delete``, see ``conversations/_nx_child.py``). An erasure asks for
        it. ``False`` on MongoDB (no such command there: nothing is sent) or when the log could
        not be truncated (busy ``attempts`` times)."""
        if not await self.is_embedded_server():
            return False
        for attempt in range(attempts):
            result = await self.database.command({"wal_checkpoint": 1, "mode": "TRUNCATE"})
            if result.get("mode") != "TRUNCATE":
                return False  # a server that ignores the mode (not started by omnirouter)
            if not result.get("busy"):
                return True
            await asyncio.sleep(0.05 * 2**attempt)
        return False

    @translating_outages
    async def ensure_indexes(
        self, plans: Iterable[IndexPlan], upgrades: Iterable[Callable[[], Awaitable[object]]] = ()
    ) -> None:
        """Create every index of ``plans``, then run the start-up ``upgrades`` (fields that older
        releases did not write); safe to run at every start-up.

        A new index on a collection that is already large takes longer than the store's socket
        timeout (30 s for the messages' indexes at 1,000,000 messages on the embedded server), so
        this runs under a deadline of its own, ``INDEX_BUILD_SECONDS``."""
        with pymongo.timeout(INDEX_BUILD_SECONDS):
            embedded = await self.is_embedded_server()
            for plan in plans:
                for collection, models in plan.items():
                    wanted = await self._text_indexes_once(collection, models) if embedded else list(models)
                    if wanted:
                        await self.database[collection].create_indexes(wanted)
            for upgrade in upgrades:
                await upgrade()

    async def _text_indexes_once(self, collection: str, models: Iterable[IndexModel]) -> list[IndexModel]:
        """``models`` less the text indexes the embedded server has already: creating one again
        there fills its FTS5 table anew over the stored documents and fails ("constraint
        failed"), where MongoDB takes an existing index as done. The embedded server lists its
        text indexes as search indexes, not with the others."""
        built = {
            field
            async for index in await self.database[collection].list_search_indexes()
            for field in dict(index.get("key") or {})
        }
        return [
            model
            for model in models
            if not (text := [f for f, kind in dict(model.document["key"]).items() if kind == "text"])
            or not set(text) <= built
        ]

    # --- group commit ----------------------------------------------------------------------

    async def write(self, collection: str, operation: Write) -> bool:
        """One write of the message path, batched with concurrent ones of its kind (inserts, or
        updates) to the same collection; raises its own ``DuplicateKeyError``. ``True``: an update
        surely matched (see BulkWrites).

        Inserts and updates are batched apart: a bulk of both goes out as two commands, one after
        the other, and each of its writes waited for both, so a customer's message waited behind a
        batch of other messages' decisions and replies before its webhook was answered."""
        return await self.enqueue_write(collection, operation)

    def enqueue_write(self, collection: str, operation: Write) -> asyncio.Future[bool]:
        """``operation`` put in its batch, as ``write`` does; the future holds what ``write``
        returns (several awaited together with ``asyncio.gather``, no task each)."""
        key = (collection, isinstance(operation, InsertOne))
        writes = self._writes.get(key)
        if writes is None:
            writes = self._writes[key] = BulkWrites(self.database[collection])
        return writes.enqueue(operation)

    def batcher(self, name: str, run: RunBatch[Req, Res]) -> Batcher[Req, Res]:
        """The read batcher ``name`` of this client, made with ``run`` on first use: concurrent
        reads of one kind go out as one query however many repositories ask."""
        found = self._batchers.get(name)
        if found is None:
            found = self._batchers[name] = Batcher(run)
        return found

    # --- secrets at rest ---------------------------------------------------------------------

    def use_sealer(self, sealer: Sealer) -> None:
        """The key that seals and opens secrets from now on (set at start-up)."""
        self.sealer = sealer

    def require_sealer(self) -> Sealer:
        if self.sealer is None:
            raise SealingError(NO_KEY)
        return self.sealer

    def seal_value(self, account_id: str, field: str, plain: str) -> str:
        """``plain`` sealed for ``field`` of ``account_id`` (``sealing.INSTALL`` for the install's
        own secrets). ``field`` names where the value is kept: ``<collection>.<_id>.<field>``
        (``webhook_subscriptions.<id>.secret``), or a path inside the account's own document
        (``channels.telegram.token``). Moved anywhere else, the value does not open."""
        return self.require_sealer().seal(plain, account_id, field)

    def open_value(self, account_id: str, field: str, stored: Any) -> str:
        """What ``seal_value(account_id, field, …)`` sealed; ``SealingError`` (a one-line reason)
        for anything else, a plain value included."""
        return self.require_sealer().unseal(stored, account_id, field)


class Repository:
    """Base of the repositories: the client they share and its database. Every public coroutine
    method of a repository turns the driver's outages into ``StoreUnavailable`` (and a closed
    client into ``StoreClosed``) at the store's edge."""

    def __init__(self, client: StoreClient) -> None:
        self._client = client
        self._db = client.database

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name, method in list(vars(cls).items()):
            if not name.startswith("_") and inspect.iscoroutinefunction(method):
                setattr(cls, name, translating_outages(method))

    async def _count(self, collection: str, query: Mapping[str, Any]) -> int:
        """How many documents match ``query``. MongoDB counts them through an index
        (``count_documents``); the embedded server runs that as an aggregate over the whole
        collection in Python, so there the ids are read through the query's index and counted."""
        if await self._client.is_embedded_server():
            return len(await self._db[collection].find(query, {"_id": 1}).to_list())
        return await self._db[collection].count_documents(query)

    async def _find_each(
        self,
        collection: str,
        field: str,
        values: Iterable[Any],
        query: Mapping[str, Any] | None = None,
        projection: Mapping[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        """The documents of ``query`` whose scalar ``field`` equals one of ``values`` (their
        ``projection``): one ``$in`` on MongoDB. The embedded server compiles an ``$in`` on any
        field but ``_id`` to a search inside the field as if it were an array, which reads the
        whole collection (14 ms at 20,000 threads, where one value's ``$eq`` takes 0.02 ms through
        the field's index), so there it is one ``$eq`` query per value, sent together."""
        wanted = list(dict.fromkeys(values))
        if not wanted:
            return []
        db = self._db[collection]
        if not await self._client.is_embedded_server():
            found = {**(query or {}), field: {"$in": [stored(value) for value in wanted]}}
            return await db.find(found, projection).to_list()
        each = [db.find({**(query or {}), **exactly(**{field: value})}, projection).to_list() for value in wanted]
        return [doc for docs in await asyncio.gather(*each) for doc in docs]

    async def _insert_once(self, collection: str, doc: dict[str, Any]) -> bool:
        """Insert ``doc`` unless its ``_id`` exists; ``True`` when this call created it."""
        try:
            await self._db[collection].insert_one(doc)
            return True
        except DuplicateKeyError:
            return False


StoreListener = monitoring.CommandListener  # sees every command a store client sends


class _CommandCounter(monitoring.CommandListener):
    """Calls back with every command the driver sends: one per store round trip."""

    _HANDSHAKE = frozenset({"hello", "ismaster", "isMaster", "endSessions"})

    def __init__(self, count: Callable[[str], None]) -> None:
        self._count = count

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name not in self._HANDSHAKE:
            self._count(event.command_name)

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass
