"""Store operations of the phone channels (SMS and calls): opt-out consent and call events.

A mixin of :class:`conversations.store.Store`; it uses the store's database handle.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from conversations.batching import Batcher
from conversations.errors import translating_outages
from conversations.models import Message


class PhoneStoreMixin:
    _db: AsyncDatabase[dict[str, Any]]
    _consent_reads: Batcher[str, str | None]

    @translating_outages
    async def set_consent(
        self, account_id: str, channel: str, address: str, state: str, at_ms: int, message_id: str
    ) -> bool:
        """Record that ``address`` said STOP (``state="stop"``) or START at ``at_ms``.

        A report older than the one stored changes nothing (keywords may be dispatched out of
        order); returns whether this call changed the stored state.
        """
        key = f"{account_id}|{channel}|{address}"
        try:
            result = await self._db.consent.update_one(
                {"_id": key, "at_ms": {"$lt": at_ms}},
                {
                    "$set": {
                        "account_id": account_id,
                        "channel": channel,
                        "address": address,
                        "state": state,
                        "at_ms": at_ms,
                        "message_id": message_id,
                    }
                },
                upsert=True,
            )
        except DuplicateKeyError:
            return False  # a newer (or the same) keyword is stored already
        return result.modified_count == 1 or result.upserted_id is not None

    @translating_outages
    async def opted_out(self, account_id: str, channel: str, address: str) -> bool:
        """Whether ``address`` said STOP on ``channel`` and has not said START since."""
        # asked before every SMS send: batched with the concurrent sends' questions
        return await self._consent_reads.submit(f"{account_id}|{channel}|{address}") == "stop"

    async def _find_consent_states(self, keys: Sequence[str]) -> list[str | None]:
        docs = await self._db.consent.find({"_id": {"$in": list(set(keys))}}, {"state": 1}).to_list()
        states = {doc["_id"]: str(doc.get("state")) for doc in docs}
        return [states.get(key) for key in keys]

    @translating_outages
    async def sent_sms_parts(self, message_id: str, count: int) -> dict[int, str]:
        """Which of the ``count`` parts of a long outbound text the provider accepted already:
        index -> provider id."""
        ids = [f"{message_id}|{index}" for index in range(count)]
        docs = await self._db.sms_parts.find({"_id": {"$in": ids}}).to_list()
        return {int(d["index"]): str(d["provider_id"]) for d in docs}

    @translating_outages
    async def note_sms_part(self, message_id: str, index: int, provider_id: str) -> None:
        await self._db.sms_parts.update_one(
            {"_id": f"{message_id}|{index}"},
            {"$set": {"message_id": message_id, "index": index, "provider_id": provider_id}},
            upsert=True,
        )

    @translating_outages
    async def insert_message_once(self, message: Message) -> tuple[Message, bool]:
        """Store a message under its (deterministic) id once; returns ``(stored, duplicate)``."""
        try:
            await self._db.messages.insert_one(message.to_doc())
            return message, False
        except DuplicateKeyError:
            doc = await self._db.messages.find_one({"_id": message.id})
            if doc is None:  # the same external id under another id
                doc = await self._db.messages.find_one(
                    {"account_id": message.account_id, "channel": message.channel,
                     "external_id": message.external_id}
                )
            assert doc is not None
            return Message.from_doc(doc), True
