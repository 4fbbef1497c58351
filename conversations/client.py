"""The MongoDB store: every read and write the router makes, named for what the router needs.

Written with PyMongo's async API and kept to the subset that holds on real MongoDB and on the
embedded server alike: single-document atomic operations (unique indexes, ``find_one_and_update``
as a claim or lease, upserts through ``update_one``), no multi-document transactions, no indexes on
array fields (the embedded server stops matching array elements once one exists).

Find-or-create steps use deterministic ids (``derived_id``), so a replay after a crash or a race
between router processes lands on the same ``_id`` and the unique index turns it into a no-op.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import pymongo
from pymongo import ASCENDING, DESCENDING, AsyncMongoClient, IndexModel, InsertOne, ReturnDocument, UpdateOne, monitoring
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from conversations.email_store import EmailStoreMixin
from conversations.errors import StoreClosed as StoreClosed
from conversations.errors import StoreError as StoreError
from conversations.errors import StoreUnavailable as StoreUnavailable
from conversations.errors import translating_outages as _translating_outages
from conversations.channel_store import ChannelStoreMixin
from conversations.filters import exactly
from conversations.agent_store import AGENT_INDEXES, AgentStore
from conversations.api_store import ApiReads
from conversations.batching import Batcher, BulkWrites
from conversations.ids import derived_id, new_id
from conversations.models import (
    Account,
    AuditEntry,
    Decision,
    DeliveryStatus,
    Direction,
    DispatchState,
    Identity,
    Inbound,
    Message,
    OutboxItem,
    OutboxState,
    StatusUpdate,
    Thread,
    ThreadStatus,
    epoch_ms,
)
from conversations.phone_store import PhoneStoreMixin
from conversations.queue_store import QUEUE_INDEXES, QueueStore
from conversations.sealing import INSTALL
from conversations.second_factor_store import SECOND_FACTOR_INDEXES, SecondFactorStore
from conversations.tenant_store import TENANT_INDEXES, TenantStore, shared_secret_field
from conversations.webhook_store import WEBHOOK_INDEXES, WebhookStore
from conversations.audit_store import AuditStore
from conversations.privacy_store import PRIVACY_INDEXES, PrivacyStore
from conversations.report_store import REPORT_INDEXES, ReportStore
from conversations.nlu_store import NLU_INDEXES, NluStoreMixin
from conversations.training_store import TRAINING_INDEXES, TrainingStore

INDEXES: dict[str, list[IndexModel]] = {
    "contacts": [IndexModel([("account_id", ASCENDING), ("updated_at", DESCENDING)])],
    "identities": [IndexModel([("contact_id", ASCENDING)])],
    "threads": [
        IndexModel(
            [("open_key", ASCENDING)],
            unique=True,
            partialFilterExpression={"open_key": {"$exists": True}},
        ),
        IndexModel([("account_id", ASCENDING), ("contact_id", ASCENDING), ("opened_at", DESCENDING)]),
        # an agent's conversations, most recent first
        IndexModel([("assignee", ASCENDING), ("status", ASCENDING), ("last_message_at", DESCENDING)]),
        IndexModel([("account_id", ASCENDING), ("last_message_at", DESCENDING)]),  # GET /api/threads
        IndexModel([("account_id", ASCENDING), ("status", ASCENDING), ("last_message_at", DESCENDING)]),  # ?status=
    ],
    "messages": [
        IndexModel(
            [("account_id", ASCENDING), ("channel", ASCENDING), ("external_id", ASCENDING)],
            unique=True,
            partialFilterExpression={"external_id": {"$exists": True}},
        ),
        IndexModel([("thread_id", ASCENDING), ("created_at", ASCENDING)]),
        IndexModel([("contact_id", ASCENDING), ("created_at", DESCENDING)]),  # history across channels
        IndexModel([("dispatch_state", ASCENDING), ("dispatch_due_ms", ASCENDING)]),
    ],
    "outbox": [
        IndexModel([("state", ASCENDING), ("due_ms", ASCENDING)]),
        IndexModel([("account_id", ASCENDING), ("state", ASCENDING), ("created_at", DESCENDING)]),
    ],
    "agents": [IndexModel([("account_id", ASCENDING), ("login", ASCENDING)], unique=True)],
    "audit": [IndexModel([("account_id", ASCENDING), ("at", DESCENDING)])],
}


# the deadline of ensure_indexes: building the indexes of a large existing store at start-up
INDEX_BUILD_SECONDS = 900.0


async def _nothing() -> None:
    return None


def inbound_id(inbound: Inbound) -> str:
    """The id an inbound message is stored under: the same for every delivery of it."""
    return derived_id("msg", f"in|{inbound.account_id}|{inbound.channel}|{inbound.external_id}")


def _customer(inbound: Inbound) -> dict[str, Any]:
    sender = {"kind": "customer", "address": inbound.sender.address}
    if inbound.sender_name:
        sender["name"] = inbound.sender_name
    return sender


class Store(ChannelStoreMixin, EmailStoreMixin, PhoneStoreMixin, AgentStore, QueueStore,
            ReportStore, PrivacyStore, AuditStore, TenantStore, WebhookStore, ApiReads, NluStoreMixin,
            TrainingStore, SecondFactorStore):
    """All of omnirouter's persistence. Construct with :meth:`connect`."""

    def __init__(self, client: AsyncMongoClient[dict[str, Any]], database: str) -> None:
        self._client = client
        self._db: AsyncDatabase[dict[str, Any]] = client[database]
        self.uri: str | None = None  # set by connect: where a child process (training) connects too
        # the hot path's reads and writes, grouped across concurrent messages (group commit)
        self._links: Batcher[str, str | None] = Batcher(self._find_links)
        self._open_threads: Batcher[str, dict[str, Any] | None] = Batcher(self._find_open_threads)
        self._thread_reads: Batcher[str, dict[str, Any] | None] = Batcher(self._find_threads)
        self._consent_reads: Batcher[str, str | None] = Batcher(self._find_consent_states)
        self._revocation_reads: Batcher[str, bool] = Batcher(self._find_revocations)
        # every write of the message path, per collection: one command per kind of write
        self._writes = {name: BulkWrites(self._db[name]) for name in ("messages", "threads", "outbox", "events")}

    @classmethod
    def connect(
        cls,
        uri: str,
        database: str,
        *,
        timeout_ms: int = 3000,
        listeners: Sequence[monitoring.CommandListener] = (),
    ) -> Store:
        """Create the client; no I/O happens until the first operation."""
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
            uri,
            tz_aware=True,
            serverSelectionTimeoutMS=timeout_ms,
            connectTimeoutMS=timeout_ms,
            # a store that hangs (rather than refusing connections) must also end in a 503
            socketTimeoutMS=3 * timeout_ms,
            event_listeners=list(listeners),
            appname="omnirouter",
        )
        store = cls(client, database)
        store.uri = uri
        return store

    @property
    def database_name(self) -> str:
        return self._db.name

    async def close(self) -> None:
        await self._client.close()

    @_translating_outages
    async def ping(self) -> None:
        await self._db.command("ping")

    @_translating_outages
    async def is_embedded_server(self) -> bool:
        """Whether the server is nx-27017 (however it was reached), which needs polling instead
        of change streams and has the limits described in the README."""
        info = await self._client.admin.command("buildInfo")
        return info.get("process") == "nx_27017"

    @_translating_outages
    async def checkpoint_embedded(self, attempts: int = 5) -> bool:
        """On the embedded store, copy the write-ahead log into the database file and truncate it,
        so data just deleted leaves no copy behind in the ``-wal`` file (SQLite zeroes the deleted
        content itself: ``secure_delete``, see ``conversations/_nx_child.py``). An erasure asks for
        it. ``False`` on MongoDB (no such command there: nothing is sent) or when the log could
        not be truncated (busy ``attempts`` times)."""
        if not await self.is_embedded_server():
            return False
        for attempt in range(attempts):
            result = await self._db.command({"wal_checkpoint": 1, "mode": "TRUNCATE"})
            if result.get("mode") != "TRUNCATE":
                return False  # a server that ignores the mode (not started by omnirouter)
            if not result.get("busy"):
                return True
            await asyncio.sleep(0.05 * 2**attempt)
        return False

    @_translating_outages
    async def ensure_indexes(self) -> None:
        """Create every index the router relies on; safe to run at every start-up.

        A new index on a collection that is already large takes longer than the store's socket
        timeout (30 s for the messages' indexes at 1,000,000 messages on the embedded server), so
        this runs under a deadline of its own, ``INDEX_BUILD_SECONDS``."""
        with pymongo.timeout(INDEX_BUILD_SECONDS):
            for indexes in (INDEXES, AGENT_INDEXES, QUEUE_INDEXES, REPORT_INDEXES, PRIVACY_INDEXES, TENANT_INDEXES,
                            WEBHOOK_INDEXES, NLU_INDEXES, TRAINING_INDEXES, SECOND_FACTOR_INDEXES):
                for collection, models in indexes.items():
                    await self._db[collection].create_indexes(models)
            await self.backfill_queue_order()
            await self.backfill_nlu_sources()

    # --- accounts ------------------------------------------------------------------------

    @_translating_outages
    async def ensure_account(self, account_id: str, name: str, now: datetime) -> Account:
        await self._db.accounts.update_one(
            {"_id": account_id},
            {"$setOnInsert": {"name": name, "created_at": epoch_ms(now), "channels": {}}},
            upsert=True,
        )
        doc = await self._db.accounts.find_one({"_id": account_id})
        assert doc is not None
        return Account.from_doc(doc)

    @_translating_outages
    async def shared_secret(self, name: str, make: Callable[[], str]) -> str:
        """A secret every router process on this store shares, created once on first use and kept
        sealed for the install (field ``secrets.<name>.value``)."""
        field = shared_secret_field(name)
        await self._db.secrets.update_one(
            {"_id": name}, {"$setOnInsert": {"value": self.seal_value(INSTALL, field, make())}}, upsert=True
        )
        doc = await self._db.secrets.find_one({"_id": name})
        assert doc is not None
        return self.open_value(INSTALL, field, doc.get("value"))

    # --- recording inbound traffic -------------------------------------------------------

    @_translating_outages
    async def find_or_create_contact(
        self,
        account_id: str,
        identity: Identity,
        name: str | None,
        now: datetime,
        phone: str | None = None,
    ) -> str:
        """The id of the contact behind ``identity``, creating contact and links on first sight.

        Merge rule: a phone number the channel vouches for (WhatsApp, SMS, a shared Telegram
        contact) is itself an identity, ``phone:<E.164>``; whoever writes from any channel with
        that number is the same contact. A new contact's id derives from its phone number when
        there is one, so first messages racing in on two channels still make one contact. A number
        vouched for later (a Telegram user sharing their own contact) joins the known contact, or
        merges it into the contact that had the number first (``join_phone``).
        """
        link_id = f"{account_id}|{identity.key}"
        phone_id = f"{account_id}|phone:{phone}" if phone else None
        # both links in one (batched) read: a returning customer costs no more than this
        linked, by_phone = await asyncio.gather(
            self._links.submit(link_id), self._links.submit(phone_id) if phone_id else _nothing()
        )
        if linked is not None:
            if phone and by_phone != linked:  # a number new to this contact: join or merge
                return await self.join_phone(account_id, linked, phone, now)
            return linked
        contact_id = by_phone or derived_id("con", phone_id or link_id)
        contact = {
            "_id": contact_id,
            "account_id": account_id,
            "identities": [identity.to_doc()],
            "created_at": epoch_ms(now),
            "updated_at": epoch_ms(now),
        }
        if name:
            contact["name"] = name
        if not await self._insert_once("contacts", contact):
            await self._db.contacts.update_one(
                {"_id": contact_id},
                {"$addToSet": {"identities": identity.to_doc()}, "$set": {"updated_at": epoch_ms(now)}},
            )
        links = [(link_id, identity)]
        if phone_id is not None and phone is not None:
            links.append((phone_id, Identity("phone", phone)))
        for key, address in links:
            await self._insert_once(
                "identities",
                {"_id": key, "account_id": account_id, "contact_id": contact_id, **address.to_doc()},
            )
        link = await self._db.identities.find_one({"_id": link_id}, {"contact_id": 1})
        assert link is not None
        return str(link["contact_id"])

    async def _find_links(self, keys: Sequence[str]) -> list[str | None]:
        docs = await self._db.identities.find({"_id": {"$in": list(set(keys))}}, {"contact_id": 1}).to_list()
        owners = {doc["_id"]: str(doc["contact_id"]) for doc in docs}
        return [owners.get(key) for key in keys]

    async def _find_open_threads(self, keys: Sequence[str]) -> list[dict[str, Any] | None]:
        docs = await self._db.threads.find({"open_key": {"$in": list(set(keys))}}).to_list()
        by_key = {doc["open_key"]: doc for doc in docs}
        return [by_key.get(key) for key in keys]

    async def _find_threads(self, ids: Sequence[str]) -> list[dict[str, Any] | None]:
        docs = await self._db.threads.find({"_id": {"$in": list(set(ids))}}).to_list()
        by_id = {doc["_id"]: doc for doc in docs}
        return [by_id.get(thread_id) for thread_id in ids]

    async def write(self, collection: str, operation: InsertOne[Any] | UpdateOne) -> bool:
        """One write of the message path, batched with concurrent ones to the same collection;
        raises its own ``DuplicateKeyError``. ``True``: an update surely matched (see BulkWrites)."""
        return await self._writes[collection].submit(operation)

    async def _insert_once_batched(self, collection: str, doc: dict[str, Any]) -> bool:
        """``_insert_once`` batched with concurrent writes: ``True`` when this call created it."""
        try:
            await self.write(collection, InsertOne(doc))
            return True
        except DuplicateKeyError:
            return False

    @_translating_outages
    async def find_open_thread(self, contact_id: str, channel: str) -> Thread | None:
        """The contact's open thread on ``channel``, if any (a batched read)."""
        doc = await self._open_threads.submit(f"{contact_id}:{channel}")
        return Thread.from_doc(doc) if doc else None

    @_translating_outages
    async def touch_thread(self, thread_id: str, now: datetime, window_ends_at: datetime | None = None) -> None:
        """Move a thread's last activity forward to ``now``, and its WhatsApp service window's
        end to ``window_ends_at`` if later (a batched write; both only ever move forward)."""
        fields = {"last_message_at": epoch_ms(now)}
        if window_ends_at is not None:
            fields["wa_window_ends_ms"] = epoch_ms(window_ends_at)
        await self.write("threads", UpdateOne({"_id": thread_id}, {"$max": fields}))

    @_translating_outages
    async def touch_open_thread(
        self, contact_id: str, channel: str, now: datetime
    ) -> Thread | None:
        """The contact's open thread on ``channel`` (its last activity set to ``now``), if any."""
        doc = await self._db.threads.find_one_and_update(
            {"open_key": f"{contact_id}:{channel}"},
            {"$set": {"last_message_at": epoch_ms(now)}},
            return_document=ReturnDocument.AFTER,
        )
        return Thread.from_doc(doc) if doc else None

    @_translating_outages
    async def open_thread(
        self, account_id: str, contact_id: str, identity: Identity, now: datetime
    ) -> Thread:
        """Open a thread for the contact on the identity's channel, or return the one open there.

        The partial unique index on ``open_key`` makes "at most one open thread per contact and
        channel" hold across processes: the loser of a race takes the winner's thread.
        """
        thread = Thread(
            id=new_id("thr"),
            account_id=account_id,
            contact_id=contact_id,
            channel=identity.channel,
            address=identity.address,
            status=ThreadStatus.BOT,
            opened_at=now,
            last_message_at=now,
            open_key=f"{contact_id}:{identity.channel}",
        )
        for _ in range(5):
            try:
                await self._db.threads.insert_one(thread.to_doc())
                return thread
            except DuplicateKeyError:
                existing = await self.touch_open_thread(contact_id, identity.channel, now)
                if existing is not None:
                    return existing
        raise StoreError(f"could not open a thread for {thread.open_key}")

    @_translating_outages
    async def find_inbound(self, inbound: Inbound) -> Message | None:
        """The stored copy of ``inbound`` if it was recorded before."""
        doc = await self._db.messages.find_one({"_id": inbound_id(inbound)})
        return Message.from_doc(doc) if doc else None

    @_translating_outages
    async def insert_inbound(
        self, inbound: Inbound, contact_id: str, thread_id: str, now: datetime, lease: timedelta
    ) -> tuple[Message, bool]:
        """Store an inbound message once; returns ``(message, duplicate)``.

        The message is born with a dispatch lease: if its dispatch does not finish before
        ``now + lease`` (the process died), a sweeper takes it over.
        """
        message = Message(
            id=inbound_id(inbound),
            account_id=inbound.account_id,
            thread_id=thread_id,
            contact_id=contact_id,
            direction=Direction.IN,
            channel=inbound.channel,
            external_id=inbound.external_id,
            text=inbound.text,
            created_at=now,
            sender=_customer(inbound),
            attachments=inbound.attachments,
            dispatch_state=DispatchState.PENDING,
            dispatch_due_ms=epoch_ms(now + lease),
            meta=dict(inbound.meta),
        )
        try:
            await self.write("messages", InsertOne(message.to_doc()))
            return message, False
        except DuplicateKeyError:
            doc = await self._db.messages.find_one({"_id": message.id})
            if doc is None:  # same external id stored under another id: legacy data
                doc = await self._db.messages.find_one(
                    {
                        "account_id": inbound.account_id,
                        "channel": inbound.channel,
                        "external_id": inbound.external_id,
                    }
                )
            assert doc is not None
            return Message.from_doc(doc), True

    # --- dispatch ------------------------------------------------------------------------

    @_translating_outages
    async def claim_undispatched(self, now: datetime, lease: timedelta) -> Message | None:
        """Take over one inbound message whose dispatch lease ran out (its process died)."""
        doc = await self._db.messages.find_one_and_update(
            {"dispatch_state": str(DispatchState.PENDING), "dispatch_due_ms": {"$lte": epoch_ms(now)}},
            {"$set": {"dispatch_due_ms": epoch_ms(now + lease)}},
            sort=[("dispatch_due_ms", ASCENDING)],
            return_document=ReturnDocument.AFTER,
        )
        return Message.from_doc(doc) if doc else None

    @_translating_outages
    async def finish_dispatch(
        self, message_id: str, decision: Decision, nlu: dict[str, Any] | None = None
    ) -> None:
        """Record the decision (and the NLU result it rests on) and end the dispatch lease."""
        done: dict[str, Any] = {"dispatch_state": str(DispatchState.DONE), "decision": decision.to_doc()}
        if nlu is not None:
            done["nlu"] = nlu
        await self.write("messages", UpdateOne({"_id": message_id}, {"$set": done, "$unset": {"dispatch_due_ms": ""}}))

    @_translating_outages
    async def get_thread(self, thread_id: str) -> Thread | None:
        """One thread (a batched read)."""
        doc = await self._thread_reads.submit(thread_id)
        return Thread.from_doc(doc) if doc else None

    async def thread_doc(self, thread_id: str) -> dict[str, Any] | None:
        """One thread's stored document (a batched read)."""
        return await self._thread_reads.submit(thread_id)

    @_translating_outages
    async def queue_thread(
        self, thread_id: str, reason: str, by_message: str, now: datetime
    ) -> Thread | None:
        """Move a bot thread to the human queue; ``None`` if it was not in the bot's hands."""
        doc = await self._db.threads.find_one_and_update(
            {"_id": thread_id, "status": str(ThreadStatus.BOT)},
            {
                "$set": {
                    "status": str(ThreadStatus.QUEUED),
                    "queued_at": epoch_ms(now),
                    "queued_by": by_message,
                    "escalation_reason": reason,
                    "handoff_reason": reason,  # kept when later transfers change escalation_reason
                },
                "$min": {"first_queued_at": epoch_ms(now)},
            },
            return_document=ReturnDocument.AFTER,
        )
        return Thread.from_doc(doc) if doc else None

    @_translating_outages
    async def queue_depth(self, account_id: str | None = None) -> int:
        query: dict[str, Any] = {"status": str(ThreadStatus.QUEUED)}
        if account_id is not None:
            query["account_id"] = account_id
        return await self._db.threads.count_documents(query)

    # --- messages ------------------------------------------------------------------------

    @_translating_outages
    async def get_message(self, message_id: str) -> Message | None:
        doc = await self._db.messages.find_one({"_id": message_id})
        return Message.from_doc(doc) if doc else None

    @_translating_outages
    async def thread_messages(self, thread_id: str, limit: int = 200) -> list[Message]:
        """The newest ``limit`` messages of a thread, oldest first."""
        cursor = self._db.messages.find(exactly(thread_id=thread_id)).sort("created_at", DESCENDING)
        docs = await cursor.limit(limit).to_list()
        return [Message.from_doc(doc) for doc in reversed(docs)]

    @_translating_outages
    async def open_thread_of(self, account_id: str, identity: Identity) -> Thread | None:
        """The open thread of whoever writes from ``identity`` on its channel, if any."""
        link = await self._db.identities.find_one({"_id": f"{account_id}|{identity.key}"})
        if link is None:
            return None
        doc = await self._db.threads.find_one({"open_key": f"{link['contact_id']}:{identity.channel}"})
        return Thread.from_doc(doc) if doc else None

    @_translating_outages
    async def apply_status_update(self, update: StatusUpdate) -> bool:
        """Move an outbound message's delivery status forward; ``False`` if it would go back
        (a late ``delivered`` after ``read``) or the message is unknown."""
        result = await self._db.messages.update_one(
            {
                "account_id": update.account_id,
                "channel": update.channel,
                "external_id": update.external_id,
                "direction": str(Direction.OUT),
                "delivery_rank": {"$lt": update.status.rank},
            },
            {
                "$set": {
                    "delivery_status": str(update.status),
                    "delivery_rank": update.status.rank,
                    "delivery_updated_at": epoch_ms(update.at),
                    **({"delivery_error": update.error} if update.error else {}),
                }
            },
        )
        return result.modified_count == 1

    # --- the outbox ----------------------------------------------------------------------

    async def create_outbound(self, **fields: Any) -> Message:
        """Store an outbound message and its outbox item (see :meth:`store_outbound`)."""
        message, _ = await self.store_outbound(**fields)
        return message

    @_translating_outages
    async def store_outbound(
        self,
        *,
        dedup_key: str,
        thread: Thread,
        to: Identity,
        text: str,
        sender: dict[str, Any],
        now: datetime,
        in_reply_to: str | None = None,
        options: Sequence[str] = (),
        meta: Mapping[str, Any] | None = None,
        leased_by: tuple[str, timedelta] | None = None,
    ) -> tuple[Message, OutboxItem | None]:
        """Store an outbound message and its outbox item, at most once per ``dedup_key``;
        returns the message and the item if this call created it.

        ``meta`` carries what the channel needs beyond text (a WhatsApp template, documents).
        ``leased_by`` (owner, lease) creates the item already leased by that worker, as if it
        had leased it at once: it sends the item itself, and if it dies, the lease runs out and
        any worker takes the item over. Both writes are batched with concurrent ones.
        """
        message = Message(
            id=derived_id("msg", f"out|{dedup_key}"),
            account_id=thread.account_id,
            thread_id=thread.id,
            contact_id=thread.contact_id,
            direction=Direction.OUT,
            channel=thread.channel,
            text=text,
            created_at=now,
            sender=sender,
            delivery_status=DeliveryStatus.QUEUED,
            delivery_rank=DeliveryStatus.QUEUED.rank,
            delivery_updated_at=now,
            in_reply_to=in_reply_to,
            meta={**({"options": list(options)} if options else {}), **(meta or {})},
        )
        item = OutboxItem(
            id=derived_id("obx", dedup_key),
            account_id=thread.account_id,
            channel=thread.channel,
            thread_id=thread.id,
            message_id=message.id,
            to=to,
            text=text,
            options=tuple(options),
            state=OutboxState.PENDING,
            due_ms=epoch_ms(now),
            created_at=now,
            meta={"sender_kind": sender.get("kind", "bot"), **(meta or {})},
        )
        if leased_by is not None:
            owner, lease = leased_by
            item = dataclasses.replace(item, due_ms=epoch_ms(now + lease), lease_owner=owner, attempts=1)
        await self._insert_once_batched("messages", message.to_doc())
        created = await self._insert_once_batched("outbox", item.to_doc())
        return message, item if created else None

    @_translating_outages
    async def lease_outbox(self, owner: str, now: datetime, lease: timedelta) -> OutboxItem | None:
        """Lease the most overdue pending item: no other worker sees it until the lease ends."""
        doc = await self._db.outbox.find_one_and_update(
            {"state": str(OutboxState.PENDING), "due_ms": {"$lte": epoch_ms(now)}},
            {"$set": {"due_ms": epoch_ms(now + lease), "lease_owner": owner}, "$inc": {"attempts": 1}},
            sort=[("due_ms", ASCENDING)],
            return_document=ReturnDocument.AFTER,
        )
        return OutboxItem.from_doc(doc) if doc else None

    @_translating_outages
    async def renew_outbox_lease(
        self, item: OutboxItem, owner: str, now: datetime, lease: timedelta
    ) -> OutboxItem | None:
        """Extend ``owner``'s lease on ``item`` to ``now + lease`` if nobody leased the item since
        ``item`` was read (every lease counts an attempt), even if the lease ran out meanwhile;
        ``None`` if another worker (or a retry) took it over: that one sends it."""
        doc = await self._db.outbox.find_one_and_update(
            {"_id": item.id, "state": str(OutboxState.PENDING), "lease_owner": owner, "attempts": item.attempts},
            {"$set": {"due_ms": epoch_ms(now + lease)}},
            return_document=ReturnDocument.AFTER,
        )
        return OutboxItem.from_doc(doc) if doc else None

    @_translating_outages
    async def complete_outbox(
        self, item: OutboxItem, owner: str, provider_message_id: str, now: datetime
    ) -> bool:
        """Record a successful send; ``False`` if the lease had passed to another worker.
        Both writes are batched with concurrent ones."""
        sent = {"state": str(OutboxState.SENT), "sent_at": epoch_ms(now), "provider_message_id": provider_message_id}
        completion = UpdateOne({"_id": item.id, "lease_owner": owner, "state": str(OutboxState.PENDING)},
                               {"$set": sent, "$unset": {"lease_owner": ""}})
        delivery = UpdateOne(
            {"_id": item.message_id, "delivery_status": str(DeliveryStatus.QUEUED)},
            {"$set": {"external_id": provider_message_id, "delivery_status": str(DeliveryStatus.SENT),
                      "delivery_rank": DeliveryStatus.SENT.rank, "delivery_updated_at": epoch_ms(now)}},
        )
        matched, _ = await asyncio.gather(self.write("outbox", completion), self.write("messages", delivery))
        if matched:
            return True
        # some update of the batch matched nothing: was it this one?
        return await self._db.outbox.count_documents({"_id": item.id, **sent}) == 1

    @_translating_outages
    async def retry_outbox(
        self, item: OutboxItem, owner: str, error: str, due_at: datetime
    ) -> None:
        await self._db.outbox.update_one(
            {"_id": item.id, "lease_owner": owner, "state": str(OutboxState.PENDING)},
            {"$set": {"due_ms": epoch_ms(due_at), "last_error": error}, "$unset": {"lease_owner": ""}},
        )

    @_translating_outages
    async def dead_letter_outbox(
        self, item: OutboxItem, owner: str, error: str, now: datetime
    ) -> None:
        """Give up on an item: it stays visible (``state: dead``) until someone retries it."""
        await self._db.outbox.update_one(
            {"_id": item.id, "lease_owner": owner, "state": str(OutboxState.PENDING)},
            {
                "$set": {"state": str(OutboxState.DEAD), "last_error": error, "dead_at": epoch_ms(now)},
                "$unset": {"lease_owner": ""},
            },
        )
        await self._db.messages.update_one(
            {"_id": item.message_id},
            {
                "$set": {
                    "delivery_status": str(DeliveryStatus.FAILED),
                    "delivery_rank": DeliveryStatus.FAILED.rank,
                    "delivery_updated_at": epoch_ms(now),
                }
            },
        )

    @_translating_outages
    async def revive_outbox(self, item_id: str, now: datetime) -> OutboxItem | None:
        """Send a dead-lettered item again from scratch; ``None`` if it is not dead."""
        doc = await self._db.outbox.find_one_and_update(
            {"_id": item_id, "state": str(OutboxState.DEAD)},
            {"$set": {"state": str(OutboxState.PENDING), "due_ms": epoch_ms(now), "attempts": 0}},
            return_document=ReturnDocument.AFTER,
        )
        if doc is None:
            return None
        await self._db.messages.update_one(
            {"_id": doc["message_id"]},
            {
                "$set": {
                    "delivery_status": str(DeliveryStatus.QUEUED),
                    "delivery_rank": DeliveryStatus.QUEUED.rank,
                    "delivery_updated_at": epoch_ms(now),
                }
            },
        )
        return OutboxItem.from_doc(doc)

    @_translating_outages
    async def list_outbox(
        self, state: OutboxState | None, account_id: str | None = None, limit: int = 100
    ) -> list[OutboxItem]:
        query: dict[str, Any] = {}
        if state is not None:
            query["state"] = str(state)
        if account_id is not None:
            query["account_id"] = account_id
        docs = await self._db.outbox.find(query).sort("created_at", DESCENDING).limit(limit).to_list()
        return [OutboxItem.from_doc(doc) for doc in docs]

    @_translating_outages
    async def outbox_pending(self) -> int:
        return await self._db.outbox.count_documents({"state": str(OutboxState.PENDING)})

    @_translating_outages
    async def get_outbox(self, item_id: str) -> OutboxItem | None:
        doc = await self._db.outbox.find_one({"_id": item_id})
        return OutboxItem.from_doc(doc) if doc else None

    # --- audit ---------------------------------------------------------------------------

    @_translating_outages
    async def record_audit(
        self, account_id: str, actor: str, action: str, target: str, now: datetime, **details: Any
    ) -> None:
        entry = AuditEntry(
            id=new_id("aud"),
            account_id=account_id,
            actor=actor,
            action=action,
            target=target,
            at=now,
            details=details,
        )
        await self._db.audit.insert_one(entry.to_doc())

    # --- helpers -------------------------------------------------------------------------

    async def _insert_once(self, collection: str, doc: dict[str, Any]) -> bool:
        """Insert ``doc`` unless its ``_id`` exists; ``True`` when this call created it."""
        try:
            await self._db[collection].insert_one(doc)
            return True
        except DuplicateKeyError:
            return False


# the mixins' operations translate outages like Store's own
for _mixin in (AgentStore, QueueStore, TenantStore, WebhookStore, ApiReads, SecondFactorStore):
    for _name, _method in list(vars(_mixin).items()):
        if inspect.iscoroutinefunction(_method) and not _name.startswith("_"):
            setattr(Store, _name, _translating_outages(_method))
