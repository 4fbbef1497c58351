"""The outbox: durable outbound sends, kept on the outbound message itself. A reply is one
document: the message the thread shows, with its send state in ``send`` (``state``, ``due_ms``,
``attempts``, ``lease_owner``, ``last_error``, the address it goes to, ...), stored at most once
per dedup key (its id derives from it). A worker leases the most overdue pending message with an
atomic ``find_one_and_update`` that pushes ``send.due_ms`` to the lease's end, so no other worker
sees it until the lease runs out; a send that fails is retried with backoff or dead-lettered, and
stays visible until someone revives it. The lease reads an index of the send state and the due
time, its state named with ``$eq`` (``filters.exactly``), so it reads the pending sends only however
many messages the store keeps: on MongoDB the index holds those alone (a partial index); the
embedded store builds it over every message, and the state's equality keeps the sent ones out of
the range read.

A lease also marks the attempt in flight: ``lease_owner`` is set by the write that leases the item
(or stores it leased) and cleared by the write that records the attempt's outcome (sent, retry,
dead). An item leased while ``lease_owner`` is still set is one whose last attempt ended with no
outcome recorded: its worker died (or lost the store) after leasing it, before or after the
provider took the message. The lease says so (``lapsed_owner``), at no extra store call, so an
``at_most_once`` item (a campaign message) is given up rather than sent a second time.

Releases before issue 19 kept the send state in an ``outbox`` collection of its own: at start-up
:meth:`OutboxRepository.adopt_legacy_outbox` moves its pending and dead items onto their messages.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from pymongo import ASCENDING, DESCENDING, IndexModel, InsertOne, ReturnDocument, UpdateOne
from pymongo.errors import DuplicateKeyError

from conversations.client import IndexPlan, Repository
from conversations.events import FEED
from conversations.filters import exactly
from conversations.ids import derived_id
from conversations.membership import thread_key
from conversations.models import epoch_ms, utcnow
from conversations.thread_models import Message, OutboxItem, OutboxState, Thread
from conversations.traffic import DeliveryStatus, Direction, Identity

PENDING, SENT, DEAD = (str(s) for s in (OutboxState.PENDING, OutboxState.SENT, OutboxState.DEAD))

INDEXES: IndexPlan = {
    "messages": [
        # the lease's: pending sends only, most overdue first (the embedded store ignores the
        # partial filter: the state leads the key so that its range is the pending sends there too)
        IndexModel(
            [("send.state", ASCENDING), ("send.due_ms", ASCENDING)], partialFilterExpression={"send.state": PENDING}
        ),
        # the console's and the API's dead letters: few, so an account's are found among all and
        # sorted (keyed by the state alone: the embedded server then reads them through it too)
        IndexModel([("send.state", ASCENDING)], partialFilterExpression={"send.state": DEAD}),
        # the API's listing of an account's sends in one state, newest first (equality, equality,
        # sort); without a state its listing reads the account's messages by time (privacy.py's
        # index): about every other one is a send
        IndexModel(
            [("account_id", ASCENDING), ("send.state", ASCENDING), ("created_at", DESCENDING)],
            name="sends_by_account_state",
            partialFilterExpression={"send.state": {"$exists": True}},
        ),
    ]
}

# the last error of an at-most-once item whose attempt ended with no outcome recorded
INTERRUPTED = "interrupted by a restart: may or may not have been sent"

_LEGACY_BATCH = 500
_SENDING = {"search_text": 0}  # what a worker reads of a message it sends: all but the search words


def outbox_item(doc: Mapping[str, Any]) -> OutboxItem:
    """The send of a stored outbound message (one with ``send``), as the worker and the API see it."""
    send, meta = doc["send"], dict(doc.get("meta") or {})
    sender = doc.get("sender") or {}
    options = meta.pop("options", ())
    return OutboxItem.from_doc(
        {
            **send,
            "_id": doc["_id"],
            "account_id": doc["account_id"],
            "channel": doc["channel"],
            "thread_id": doc["thread_id"],
            "message_id": doc["_id"],
            "text": doc.get("text", ""),
            "created_at": doc["created_at"],
            "options": options,
            "meta": {
                "sender_kind": sender.get("kind", "bot"),
                **({"sender_name": sender["name"]} if sender.get("name") else {}),  # the agent the chat names
                **meta,
            },
        }
    )


def outbound_document(
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
    live: bool = True,
) -> tuple[Message, dict[str, Any]]:
    """An outbound message and its document with its send state, not stored yet; its id derives
    from ``dedup_key``.

    ``meta`` carries what the channel needs beyond text (a WhatsApp template, documents).
    ``leased_by`` (owner, lease) makes the send already leased by that worker, as if it had
    leased it at once: it sends the item itself, and if it dies, the lease runs out and any
    worker takes the item over. ``at_most_once``: an attempt that ends with no outcome
    recorded is not followed by another (see the module's docstring). ``live``: the consoles'
    live feed tells of it (``conversations/events.py``; not a campaign's sends).
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
    send: dict[str, Any] = {"state": PENDING, "due_ms": epoch_ms(now), "attempts": 0, "to": to.to_doc()}
    if thread.wa_window_ends_ms is not None:  # checked at send time, with no read of the thread
        send["window_ends_ms"] = thread.wa_window_ends_ms
    if to.channel == thread.channel and thread.inbox_id is not None:
        send["inbox_id"] = thread.inbox_id
    if at_most_once:
        send["at_most_once"] = True
    if leased_by is not None:
        owner, lease = leased_by
        send.update(due_ms=epoch_ms(now + lease), lease_owner=owner, attempts=1)
    # ``inbox``: whose agents the live feed tells of the reply (events.reply_event)
    return message, {**message.to_doc(), "send": send, "inbox": thread_key(thread), **(FEED if live else {})}


def settled_document(
    doc: Mapping[str, Any], now: datetime, *, sent: str | None = None, error: str = "", due_at: datetime | None = None
) -> dict[str, Any]:
    """``doc`` (an outbound message sent before it was stored) with the outcome of its attempt,
    as :meth:`OutboxRepository.complete_outbox`, ``retry_outbox`` or ``dead_letter_outbox`` record
    it on a stored one: ``sent`` (the provider's id), else a retry at ``due_at``, else dead."""
    send = {k: v for k, v in doc["send"].items() if k != "lease_owner"}
    settled = dict(doc)
    if sent is not None:
        send.update(state=SENT, provider_message_id=sent, sent_at=epoch_ms(now))
        settled.update(external_id=sent, **_delivery(DeliveryStatus.SENT, now))
    elif due_at is not None:
        send.update(due_ms=epoch_ms(due_at), last_error=error)
    else:
        send.update(state=DEAD, last_error=error, dead_at=epoch_ms(now))
        settled.update(_delivery(DeliveryStatus.FAILED, now))
    settled["send"] = send
    return settled


# the index the releases before leased through, as MongoDB and the embedded store name it
_DUE_TIME_INDEX = ("send.due_ms_1", "idx_messages_send_due_ms")
# the lease's index leads with the state: an equality that index serves on either store
_PENDING = exactly(**{"send.state": PENDING})


def _sent(field: str, value: Any) -> dict[str, Any]:
    return {f"send.{field}": value}


class OutboxRepository(Repository):
    """Storing, leasing, completing, retrying and dead-lettering outbound sends."""

    async def create_outbound(self, **fields: Any) -> Message:
        """Store an outbound message with its send state (see :meth:`store_outbound`)."""
        message, _ = await self.store_outbound(**fields)
        return message

    async def store_outbound(self, **fields: Any) -> tuple[Message, OutboxItem | None]:
        """Store an outbound message with its send state (the fields of :func:`outbound_document`),
        at most once per ``dedup_key``, in one insert (batched with concurrent ones); returns the
        message and its send if this call created it."""
        message, doc = outbound_document(**fields)
        try:
            await self._client.write("messages", InsertOne(doc))
        except DuplicateKeyError:
            return message, None
        return message, outbox_item(doc)

    async def lease_outbox(self, owner: str, now: datetime, lease: timedelta) -> OutboxItem | None:
        """Lease the most overdue pending send: no other worker sees it until the lease ends.
        The item comes back as leased, with ``lapsed_owner`` naming the worker whose attempt
        before ended with no outcome recorded, if one did (the document before the write says)."""
        due_ms = epoch_ms(now + lease)
        before = await self._db.messages.find_one_and_update(
            {**_PENDING, "send.due_ms": {"$lte": epoch_ms(now)}},
            {"$set": {"send.due_ms": due_ms, "send.lease_owner": owner}, "$inc": {"send.attempts": 1}},
            sort=[("send.due_ms", ASCENDING)],
            projection=_SENDING,
            return_document=ReturnDocument.BEFORE,
        )
        if before is None:
            return None
        item = outbox_item(before)
        return dataclasses.replace(
            item, due_ms=due_ms, lease_owner=owner, attempts=item.attempts + 1, lapsed_owner=item.lease_owner
        )

    async def renew_outbox_lease(
        self, item: OutboxItem, owner: str, now: datetime, lease: timedelta
    ) -> OutboxItem | None:
        """Extend ``owner``'s lease on ``item`` to ``now + lease`` if nobody leased the item since
        ``item`` was read (every lease counts an attempt), even if the lease ran out meanwhile;
        ``None`` if another worker (or a retry) took it over: that one sends it."""
        doc = await self._db.messages.find_one_and_update(
            {**self._leased(item, owner), "send.attempts": item.attempts},
            {"$set": {"send.due_ms": epoch_ms(now + lease)}},
            projection=_SENDING,
            return_document=ReturnDocument.AFTER,
        )
        return outbox_item(doc) if doc else None

    async def complete_outbox(self, item: OutboxItem, owner: str, provider_message_id: str, now: datetime) -> bool:
        """Record a successful send on the message (sent, with the provider's id) in one update,
        batched with concurrent ones; ``False`` if the lease had passed to another worker."""
        sent = {**_sent("state", SENT), **_sent("provider_message_id", provider_message_id)}
        completion = UpdateOne(
            self._leased(item, owner),
            {
                "$set": {
                    **sent,
                    **_sent("sent_at", epoch_ms(now)),
                    "external_id": provider_message_id,
                    **_delivery(DeliveryStatus.SENT, now),
                },
                "$unset": {"send.lease_owner": ""},
            },
        )
        if await self._client.write("messages", completion):
            return True
        # some update of the batch matched nothing: was it this one?
        return await self._db.messages.find_one({"_id": item.id, **sent}, {"_id": 1}) is not None

    async def retry_outbox(self, item: OutboxItem, owner: str, error: str, due_at: datetime) -> None:
        await self._db.messages.update_one(
            self._leased(item, owner),
            {
                "$set": {**_sent("due_ms", epoch_ms(due_at)), **_sent("last_error", error)},
                "$unset": {"send.lease_owner": ""},
            },
        )

    async def dead_letter_outbox(self, item: OutboxItem, owner: str, error: str, now: datetime) -> None:
        """Give up on a send: it stays visible (``state: dead``, the message ``failed``) until
        someone retries it."""
        await self._db.messages.update_one(
            self._leased(item, owner),
            {
                "$set": {
                    **_sent("state", DEAD),
                    **_sent("last_error", error),
                    **_sent("dead_at", epoch_ms(now)),
                    **_delivery(DeliveryStatus.FAILED, now),
                },
                "$unset": {"send.lease_owner": ""},
            },
        )

    async def revive_outbox(self, item_id: str, now: datetime) -> OutboxItem | None:
        """Send a dead-lettered item again from scratch; ``None`` if it is not dead."""
        doc = await self._db.messages.find_one_and_update(
            {"_id": item_id, "send.state": DEAD},
            {
                "$set": {
                    **_sent("state", PENDING),
                    **_sent("due_ms", epoch_ms(now)),
                    **_sent("attempts", 0),
                    **_delivery(DeliveryStatus.QUEUED, now),
                },
                "$unset": {"send.lease_owner": ""},  # a fresh start, not an attempt cut short
            },
            return_document=ReturnDocument.AFTER,
        )
        return outbox_item(doc) if doc else None

    async def list_outbox(
        self, state: OutboxState | None, account_id: str | None = None, limit: int = 100
    ) -> list[OutboxItem]:
        """Sends newest first, of one account (``None``: every account's), in one state if given."""
        # the state's own condition beside $exists: the query names the partial index's filter
        sent: dict[str, Any] = {"$exists": True, **({"$eq": str(state)} if state is not None else {})}
        query = {**(exactly(account_id=account_id) if account_id is not None else {}), "send.state": sent}
        docs = await self._db.messages.find(query).sort("created_at", DESCENDING).limit(limit).to_list()
        return [outbox_item(doc) for doc in docs]

    async def dead_letters(
        self, account_id: str, *, thread_ids: Sequence[str] | None = None, message_ids: Sequence[str] | None = None
    ) -> list[OutboxItem]:
        """The account's sends given up on (newest first), of these threads or messages if named."""
        query: dict[str, Any] = {"account_id": account_id, "send.state": DEAD}
        if thread_ids is not None:
            query["thread_id"] = {"$in": list(thread_ids)}
        if message_ids is not None:
            query["_id"] = {"$in": list(message_ids)}
        docs = await self._db.messages.find(query).sort("created_at", DESCENDING).limit(500).to_list()
        return [outbox_item(doc) for doc in docs]

    async def outbox_pending(self) -> int:
        """How many sends are pending (the metrics' gauge, read at every scrape), through the
        lease's index on either store (``_count``)."""
        return await self._count("messages", _PENDING)

    async def get_outbox(self, item_id: str) -> OutboxItem | None:
        doc = await self._db.messages.find_one({"_id": item_id, "send.state": {"$exists": True}})
        return outbox_item(doc) if doc else None

    async def retire_due_time_index(self) -> None:
        """Drop the index of the due time alone that earlier releases leased through (the lease
        now reads the index of the state and the due time): the embedded store kept every send in
        it, the sent ones too, and updated it with every message."""
        for name, index in (await self._db.messages.index_information()).items():
            if name in _DUE_TIME_INDEX and list(index["key"]) == [("send.due_ms", ASCENDING)]:
                await self._db.messages.drop_index(name)

    async def adopt_legacy_outbox(self) -> int:
        """Move the pending and dead items of an earlier release's ``outbox`` collection onto their
        messages, as they are (attempts, errors, the worker whose lease ran out kept), and delete
        them there; returns how many moved. An item whose lease still runs is left in its worker's
        hands (a router of that release still running beside this one): it is moved by a later
        call if that worker does not record it as sent. Safe to run again after an interruption: a
        message that has its send state already keeps it. Sent items stay where they are (their
        messages say sent, with the provider's id)."""
        moved, now_ms = 0, epoch_ms(utcnow())
        movable = {
            "state": {"$in": [PENDING, DEAD]},
            "$or": [{"lease_owner": {"$exists": False}}, {"due_ms": {"$lte": now_ms}}],
        }
        while docs := await self._db.outbox.find(movable).limit(_LEGACY_BATCH).to_list():
            await self._db.messages.bulk_write(
                [
                    UpdateOne({"_id": doc["message_id"], "send": {"$exists": False}}, {"$set": {"send": _legacy(doc)}})
                    for doc in docs
                ],
                ordered=False,
            )
            await self._db.outbox.delete_many({"_id": {"$in": [doc["_id"] for doc in docs]}})
            moved += len(docs)
        return moved

    @staticmethod
    def _leased(item: OutboxItem, owner: str) -> dict[str, Any]:
        return {"_id": item.id, "send.lease_owner": owner, "send.state": PENDING}


def _delivery(status: DeliveryStatus, now: datetime) -> dict[str, Any]:
    return {"delivery_status": str(status), "delivery_rank": status.rank, "delivery_updated_at": epoch_ms(now)}


_LEGACY_FIELDS = (
    "state",
    "due_ms",
    "attempts",
    "to",
    "lease_owner",
    "last_error",
    "dead_at",
    "window_ends_ms",
    "inbox_id",
    "at_most_once",
)


def _legacy(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The send state of an earlier release's outbox item (its text, options and sender are the
    message's already)."""
    return {name: doc[name] for name in _LEGACY_FIELDS if doc.get(name) is not None}
