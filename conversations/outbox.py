"""The outbox: durable outbound sends. An outbound message and its outbox item are stored together,
at most once per dedup key (both ids derive from it); a worker leases the most overdue item with an
atomic ``find_one_and_update`` that pushes ``due_ms`` to the lease's end, so no other worker sees it
until the lease runs out; a send that fails is retried with backoff or dead-lettered, and stays
visible until someone revives it.

A lease also marks the attempt in flight: ``lease_owner`` is set by the write that leases the item
(or stores it leased) and cleared by the write that records the attempt's outcome (sent, retry,
dead). An item leased while ``lease_owner`` is still set is one whose last attempt ended with no
outcome recorded: its worker died (or lost the store) after leasing it, before or after the
provider took the message. The lease says so (``lapsed_owner``), at no extra store call, so an
``at_most_once`` item (a campaign message) is given up rather than sent a second time.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from pymongo import ASCENDING, DESCENDING, IndexModel, InsertOne, ReturnDocument, UpdateOne
from pymongo.errors import DuplicateKeyError

from conversations.client import IndexPlan, Repository
from conversations.ids import derived_id
from conversations.models import epoch_ms
from conversations.thread_models import Message, OutboxItem, OutboxState, Thread
from conversations.traffic import DeliveryStatus, Direction, Identity

INDEXES: IndexPlan = {
    "outbox": [
        IndexModel([("state", ASCENDING), ("due_ms", ASCENDING)]),
        IndexModel([("account_id", ASCENDING), ("state", ASCENDING), ("created_at", DESCENDING)]),
    ]
}

# the last error of an at-most-once item whose attempt ended with no outcome recorded
INTERRUPTED = "interrupted by a restart: may or may not have been sent"


class OutboxRepository(Repository):
    """Storing, leasing, completing, retrying and dead-lettering outbound sends."""

    async def create_outbound(self, **fields: Any) -> Message:
        """Store an outbound message and its outbox item (see :meth:`store_outbound`)."""
        message, _ = await self.store_outbound(**fields)
        return message

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
        at_most_once: bool = False,
    ) -> tuple[Message, OutboxItem | None]:
        """Store an outbound message and its outbox item, at most once per ``dedup_key``;
        returns the message and the item if this call created it.

        ``meta`` carries what the channel needs beyond text (a WhatsApp template, documents).
        ``leased_by`` (owner, lease) creates the item already leased by that worker, as if it
        had leased it at once: it sends the item itself, and if it dies, the lease runs out and
        any worker takes the item over. ``at_most_once``: an attempt that ends with no outcome
        recorded is not followed by another (see the module's docstring). Both writes are batched
        with concurrent ones.
        """
        message = Message(
            id=derived_id("msg", f"out|{dedup_key}"),
            account_id=thread.account_id,
            thread_id=thread.id,
            contact_id=thread.contact_id,
            direction=Direction.OUT,
            channel=to.channel,  # the thread's, unless the customer asked to be answered elsewhere
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
            channel=to.channel,
            thread_id=thread.id,
            message_id=message.id,
            to=to,
            text=text,
            options=tuple(options),
            state=OutboxState.PENDING,
            due_ms=epoch_ms(now),
            created_at=now,
            meta={
                "sender_kind": sender.get("kind", "bot"),
                **({"sender_name": sender["name"]} if sender.get("name") else {}),  # the agent the chat names
                **(meta or {}),
            },
            window_ends_ms=thread.wa_window_ends_ms,
            inbox_id=thread.inbox_id if to.channel == thread.channel else None,
            at_most_once=at_most_once or None,
        )
        if leased_by is not None:
            owner, lease = leased_by
            item = dataclasses.replace(item, due_ms=epoch_ms(now + lease), lease_owner=owner, attempts=1)
        await self._insert_once_batched("messages", message.to_doc())
        created = await self._insert_once_batched("outbox", item.to_doc())
        return message, item if created else None

    async def lease_outbox(self, owner: str, now: datetime, lease: timedelta) -> OutboxItem | None:
        """Lease the most overdue pending item: no other worker sees it until the lease ends.
        The item comes back as leased, with ``lapsed_owner`` naming the worker whose attempt
        before ended with no outcome recorded, if one did (the document before the write says)."""
        due_ms = epoch_ms(now + lease)
        before = await self._db.outbox.find_one_and_update(
            {"state": str(OutboxState.PENDING), "due_ms": {"$lte": epoch_ms(now)}},
            {"$set": {"due_ms": due_ms, "lease_owner": owner}, "$inc": {"attempts": 1}},
            sort=[("due_ms", ASCENDING)],
            return_document=ReturnDocument.BEFORE,
        )
        if before is None:
            return None
        item = OutboxItem.from_doc(before)
        return dataclasses.replace(
            item, due_ms=due_ms, lease_owner=owner, attempts=item.attempts + 1, lapsed_owner=item.lease_owner
        )

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

    async def complete_outbox(self, item: OutboxItem, owner: str, provider_message_id: str, now: datetime) -> bool:
        """Record a successful send; ``False`` if the lease had passed to another worker.
        Both writes are batched with concurrent ones."""
        sent = {"state": str(OutboxState.SENT), "sent_at": epoch_ms(now), "provider_message_id": provider_message_id}
        completion = UpdateOne(
            {"_id": item.id, "lease_owner": owner, "state": str(OutboxState.PENDING)},
            {"$set": sent, "$unset": {"lease_owner": ""}},
        )
        delivery = UpdateOne(
            {"_id": item.message_id, "delivery_status": str(DeliveryStatus.QUEUED)},
            {
                "$set": {
                    "external_id": provider_message_id,
                    "delivery_status": str(DeliveryStatus.SENT),
                    "delivery_rank": DeliveryStatus.SENT.rank,
                    "delivery_updated_at": epoch_ms(now),
                }
            },
        )
        matched, _ = await asyncio.gather(
            self._client.write("outbox", completion), self._client.write("messages", delivery)
        )
        if matched:
            return True
        # some update of the batch matched nothing: was it this one?
        return await self._db.outbox.count_documents({"_id": item.id, **sent}) == 1

    async def retry_outbox(self, item: OutboxItem, owner: str, error: str, due_at: datetime) -> None:
        await self._db.outbox.update_one(
            {"_id": item.id, "lease_owner": owner, "state": str(OutboxState.PENDING)},
            {"$set": {"due_ms": epoch_ms(due_at), "last_error": error}, "$unset": {"lease_owner": ""}},
        )

    async def dead_letter_outbox(self, item: OutboxItem, owner: str, error: str, now: datetime) -> None:
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

    async def dead_letters(
        self, account_id: str, *, thread_ids: Sequence[str] | None = None, message_ids: Sequence[str] | None = None
    ) -> list[OutboxItem]:
        """The account's sends given up on (newest first), of these threads or messages if named."""
        query: dict[str, Any] = {"account_id": account_id, "state": str(OutboxState.DEAD)}
        if thread_ids is not None:
            query["thread_id"] = {"$in": list(thread_ids)}
        if message_ids is not None:
            query["message_id"] = {"$in": list(message_ids)}
        docs = await self._db.outbox.find(query).sort("created_at", DESCENDING).limit(500).to_list()
        return [OutboxItem.from_doc(doc) for doc in docs]

    async def outbox_pending(self) -> int:
        return await self._db.outbox.count_documents({"state": str(OutboxState.PENDING)})

    async def get_outbox(self, item_id: str) -> OutboxItem | None:
        doc = await self._db.outbox.find_one({"_id": item_id})
        return OutboxItem.from_doc(doc) if doc else None

    async def _insert_once_batched(self, collection: str, doc: dict[str, Any]) -> bool:
        """``_insert_once`` batched with concurrent writes: ``True`` when this call created it."""
        try:
            await self._client.write(collection, InsertOne(doc))
            return True
        except DuplicateKeyError:
            return False
