"""Messages: recording inbound traffic exactly once, its dispatch lease, delivery status updates,
edits, and a thread's or a contact's history.

An inbound message is stored under an id derived from its account, channel and provider id
(``inbound_id``), so a redelivery, a replay after a crash or a race between router processes lands
on the same ``_id`` and the unique index turns it into a no-op. It is born with a dispatch lease:
if its dispatch does not finish in time (the process died), a sweeper takes it over
(``claim_undispatched``). Outbound messages are written with their send state (``send``, see ``outbox.py``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from pymongo import ASCENDING, DESCENDING, TEXT, IndexModel, InsertOne, ReturnDocument, UpdateOne
from pymongo.errors import DuplicateKeyError

from conversations.client import IndexPlan, Repository
from conversations.filters import exactly
from conversations.ids import derived_id
from conversations.models import epoch_ms
from conversations.search_words import THREAD_CHARS, search_text, search_text_off_loop, text_filter
from conversations.thread_models import Decision, DispatchState, Message
from conversations.traffic import Direction, Inbound, StatusUpdate

INDEXES: IndexPlan = {
    "messages": [
        IndexModel(
            [("account_id", ASCENDING), ("channel", ASCENDING), ("external_id", ASCENDING)],
            unique=True,
            partialFilterExpression={"external_id": {"$exists": True}},
        ),
        IndexModel([("thread_id", ASCENDING), ("created_at", ASCENDING)]),
        IndexModel([("contact_id", ASCENDING), ("created_at", DESCENDING)]),  # history across channels
        # search (search_words.py): the one text index a collection may have. Not compound with
        # account_id: the embedded store builds a compound key with "text" as a plain index
        IndexModel(
            [("search_text", TEXT)],
            name="search_text",
            default_language="none",  # no stemming or stop words: the terms are folded already
            language_override="search_language",  # a message's own "language" field is no override
        ),
        IndexModel([("dispatch_state", ASCENDING), ("dispatch_due_ms", ASCENDING)]),
    ]
}


def inbound_id(inbound: Inbound) -> str:
    """The id an inbound message is stored under: the same for every delivery of it."""
    return derived_id("msg", f"in|{inbound.account_id}|{inbound.channel}|{inbound.external_id}")


def _customer(inbound: Inbound) -> dict[str, Any]:
    sender = {"kind": "customer", "address": inbound.sender.address}
    if inbound.sender_name:
        sender["name"] = inbound.sender_name
    return sender


async def _document(message: Message) -> dict[str, Any]:
    """``message``'s document; a long text's search terms made off the event loop (in a child
    process: ``search_text_off_loop``), so the loop goes on with the other customers' messages."""
    if len(message.text) <= THREAD_CHARS:
        return message.to_doc()
    return message.to_doc(terms=await search_text_off_loop(message.text))


def _stored_once(reply: Mapping[str, Any]) -> UpdateOne:
    """An upsert that stores ``reply`` unless a message has its id (then left as it is): the same
    ``update`` command as a decision, where an insert would need a command of its own."""
    return UpdateOne(
        {"_id": reply["_id"]}, {"$setOnInsert": {k: v for k, v in reply.items() if k != "_id"}}, upsert=True
    )


class MessagesRepository(Repository):
    """Recording and reading messages (see the module's docstring)."""

    # --- recording inbound traffic -----------------------------------------------------------

    async def find_inbound(self, inbound: Inbound) -> Message | None:
        """The stored copy of ``inbound`` if it was recorded before."""
        doc = await self._db.messages.find_one({"_id": inbound_id(inbound)})
        return Message.from_doc(doc) if doc else None

    async def record_inbound(
        self, inbound: Inbound, contact_id: str, thread_id: str, now: datetime, lease: timedelta
    ) -> tuple[Message, bool]:
        """Store an inbound message once (a batched write); returns ``(message, duplicate)``.

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
            window_ends_ms=None if inbound.window_ends_at is None else epoch_ms(inbound.window_ends_at),
            meta=dict(inbound.meta),
        )
        try:
            await self._client.write("messages", InsertOne(await _document(message)))
            return message, False
        except DuplicateKeyError:
            return await self._stored_copy(message), True

    async def insert_message_once(self, message: Message) -> tuple[Message, bool]:
        """Store a message under its (deterministic) id once; returns ``(stored, duplicate)``."""
        try:
            await self._db.messages.insert_one(await _document(message))
            return message, False
        except DuplicateKeyError:
            return await self._stored_copy(message), True

    async def apply_edit(self, edited: Inbound, edited_at: datetime) -> Message | None:
        """Make a stored inbound message read as ``edited``; earlier versions go to ``edits``.

        Returns the updated message, the unchanged one when this edit is not newer than the last
        one applied (a redelivery or a late, older edit), or ``None`` when the original was never
        recorded (the caller records the edited message as a new one).
        """
        key = exactly(
            account_id=edited.account_id, channel=edited.channel, external_id=edited.external_id, direction=Direction.IN
        )
        at_ms = epoch_ms(edited_at)
        terms = await search_text_off_loop(edited.text)
        for _ in range(3):  # an optimistic update: retried if another edit lands in between
            doc = await self._db.messages.find_one(key)
            if doc is None:
                return None
            if doc.get("edited_ms", -1) >= at_ms:
                return Message.from_doc(doc)
            if doc["text"] == edited.text and doc.get("attachments", []) == [a.to_doc() for a in edited.attachments]:
                # the message already reads so (an edit recorded as its never-seen original, delivered
                # again): no "earlier version" identical to it
                return Message.from_doc(doc)
            # the whole list is set, not $push-ed: the embedded server stores a pushed document
            # as a JSON string
            edits = [*doc.get("edits", []), {"text": doc["text"], "replaced_ms": at_ms}]
            # unchanged since read (edit order: above): every edit moves edited_ms. Not by its
            # text: the embedded store takes a text that starts with a date for a date, and
            # compares it as one
            unchanged = {"edited_ms": doc["edited_ms"]} if "edited_ms" in doc else {"edited_ms": {"$exists": False}}
            changed = await self._db.messages.find_one_and_update(
                {"_id": doc["_id"], **unchanged},
                {
                    "$set": {
                        "text": edited.text,
                        "search_text": terms,
                        "attachments": [a.to_doc() for a in edited.attachments],
                        "edited_ms": at_ms,
                        "edits": edits,
                    }
                },
                return_document=ReturnDocument.AFTER,
            )
            if changed is not None:
                return Message.from_doc(changed)
        return Message.from_doc(doc) if doc is not None else None

    async def message_edits(self, message_id: str) -> list[dict[str, Any]]:
        """What a customer's message said before each of their edits, oldest first (``text``,
        ``replaced_ms``: when the next version replaced it)."""
        doc = await self._db.messages.find_one({"_id": message_id}, {"edits": 1})
        return list(doc.get("edits") or []) if doc else []

    async def delivery_error(self, message_id: str) -> str | None:
        """Why the provider could not deliver an outbound message, as it said (``None``: it did not say)."""
        doc = await self._db.messages.find_one({"_id": message_id}, {"delivery_error": 1})
        return str(doc["delivery_error"]) if doc and doc.get("delivery_error") else None

    async def apply_status_update(self, update: StatusUpdate) -> bool:
        """Move an outbound message's delivery status forward; ``False`` if it would go back
        (a late ``delivered`` after ``read``) or the message is unknown."""
        result = await self._db.messages.update_one(
            {
                **exactly(
                    account_id=update.account_id,
                    channel=update.channel,
                    external_id=update.external_id,
                    direction=Direction.OUT,
                ),
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

    # --- dispatch ----------------------------------------------------------------------------

    async def claim_undispatched(self, now: datetime, lease: timedelta) -> Message | None:
        """Take over one inbound message whose dispatch lease ran out (its process died)."""
        doc = await self._db.messages.find_one_and_update(
            {**exactly(dispatch_state=DispatchState.PENDING), "dispatch_due_ms": {"$lte": epoch_ms(now)}},
            {"$set": {"dispatch_due_ms": epoch_ms(now + lease)}},
            sort=[("dispatch_due_ms", ASCENDING)],
            return_document=ReturnDocument.AFTER,
        )
        return Message.from_doc(doc) if doc else None

    async def renew_dispatch(self, message_id: str, now: datetime, lease: timedelta) -> bool:
        """Push a message's dispatch lease to ``now + lease`` while its dispatch is still at work,
        so no sweeper takes it over; ``False`` once it is finished."""
        result = await self._db.messages.update_one(
            {"_id": message_id, "dispatch_state": str(DispatchState.PENDING)},
            {"$set": {"dispatch_due_ms": epoch_ms(now + lease)}},
        )
        return result.matched_count == 1

    async def finish_dispatch(
        self,
        message_id: str,
        decision: Decision,
        nlu: dict[str, Any] | None = None,
        replies: Sequence[Mapping[str, Any]] = (),
    ) -> None:
        """Record the decision (and the NLU result it rests on) and end the dispatch lease; store
        ``replies`` (outbound messages sent before they were stored, with the outcome of their
        send) in the same command, each unless stored already (a replay stored it first: kept as
        it is). Safe to run again."""
        done: dict[str, Any] = {"dispatch_state": str(DispatchState.DONE), "decision": decision.to_doc()}
        if nlu is not None:
            done["nlu"] = nlu
        decided = UpdateOne({"_id": message_id}, {"$set": done, "$unset": {"dispatch_due_ms": ""}})
        await self._write_all([decided, *map(_stored_once, replies)])

    async def store_sent_replies(self, replies: Sequence[Mapping[str, Any]]) -> None:
        """Store ``replies`` (sent before they were stored) each unless stored already, with no
        decision: its dispatch failed after sending them, and its replay must not send them again."""
        await self._write_all([_stored_once(reply) for reply in replies])

    async def _write_all(self, writes: Sequence[UpdateOne]) -> None:
        """``writes`` in one batch (one ``update`` command when the router is quiet)."""
        batched = [self._client.enqueue_write("messages", write) for write in writes]
        outcomes = await asyncio.gather(*batched, return_exceptions=True)
        failed = next((outcome for outcome in outcomes if isinstance(outcome, BaseException)), None)
        if failed is not None:
            raise failed

    # --- reading -----------------------------------------------------------------------------

    async def search_messages(self, account_id: str, query: str, limit: int = 50, skip: int = 0) -> list[Message]:
        """The account's messages holding every word of ``query`` (the last one as a prefix), newest
        first, from the ``skip``-th on; none for a query without words."""
        found = text_filter(query)
        if found is None:
            return []
        # account_id as a bare equality, not ``exactly``: on the embedded store an indexed
        # ``$eq`` makes SQLite walk every message of the account and look each one up in the text
        # index (seconds at 100,000 messages); a bare one leaves the text index to lead
        cursor = self._db.messages.find({"account_id": account_id, **found})
        cursor = cursor.sort([("created_at", DESCENDING), ("_id", DESCENDING)]).skip(skip).limit(limit)
        return [Message.from_doc(doc) for doc in await cursor.to_list()]

    async def backfill_search_text(self, batch: int = 500) -> None:
        """Give messages stored by earlier releases their ``search_text`` in place of the ``words``
        array those releases searched (at start-up, one write command per batch), and drop the
        index on ``words``."""
        for name, index in (await self._db.messages.index_information()).items():
            if "words" in dict(index["key"]):
                await self._db.messages.drop_index(name)
        missing = {"search_text": {"$exists": False}}
        while docs := await self._db.messages.find(missing, {"text": 1}).limit(batch).to_list():
            await self._db.messages.bulk_write(
                [
                    UpdateOne(
                        {"_id": doc["_id"]},
                        {"$set": {"search_text": search_text(str(doc.get("text") or ""))}, "$unset": {"words": ""}},
                    )
                    for doc in docs
                ],
                ordered=False,
            )

    async def get_message(self, message_id: str) -> Message | None:
        doc = await self._db.messages.find_one({"_id": message_id})
        return Message.from_doc(doc) if doc else None

    async def thread_messages(self, thread_id: str, limit: int = 200) -> list[Message]:
        """The newest ``limit`` messages of a thread, oldest first."""
        cursor = self._db.messages.find(exactly(thread_id=thread_id)).sort("created_at", DESCENDING)
        docs = await cursor.limit(limit).to_list()
        return [Message.from_doc(doc) for doc in reversed(docs)]

    async def contact_messages(self, contact_id: str, limit: int = 300) -> list[Message]:
        """The contact's newest ``limit`` messages on every channel, oldest first."""
        docs = (
            await self._db.messages.find(exactly(contact_id=contact_id))
            .sort("created_at", DESCENDING)
            .limit(limit)
            .to_list()
        )
        return [Message.from_doc(doc) for doc in reversed(docs)]

    async def list_messages(self, account_id: str, *, limit: int = 200, **match: str) -> list[Message]:
        """The account's newest ``limit`` messages, newest first; ``match`` filters on scalar
        fields (direction, channel, thread_id, external_id, delivery_status, dispatch_state)."""
        docs = (
            await self._db.messages.find(exactly(account_id=account_id, **match))
            .sort("created_at", DESCENDING)
            .limit(limit)
            .to_list()
        )
        return [Message.from_doc(doc) for doc in docs]

    async def existing_messages(self, account_id: str, message_ids: Sequence[str]) -> set[str]:
        """Those of ``message_ids`` that are the account's messages (still there)."""
        found: set[str] = set()
        for start in range(0, len(message_ids), 1000):
            cursor = self._db.messages.find(
                {"_id": {"$in": list(message_ids[start : start + 1000])}, "account_id": account_id}, {"_id": 1}
            )
            found.update([str(doc["_id"]) async for doc in cursor])
        return found

    async def _stored_copy(self, message: Message) -> Message:
        """The message stored before under ``message``'s id, or under its external id (legacy data)."""
        doc = await self._db.messages.find_one({"_id": message.id})
        if doc is None:  # same external id stored under another id
            doc = await self._db.messages.find_one(
                {"account_id": message.account_id, "channel": message.channel, "external_id": message.external_id}
            )
        assert doc is not None
        return Message.from_doc(doc)
