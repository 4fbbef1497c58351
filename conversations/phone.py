"""The phone channels' records: SMS opt-out consent (STOP / START, asked before every SMS send)
and the parts of long outbound texts the provider accepted already. Calls are recorded as
messages (``messages.insert_message_once``).
"""

from __future__ import annotations

from collections.abc import Sequence

from pymongo.errors import DuplicateKeyError

from conversations.client import Repository, StoreClient


class PhoneRepository(Repository):
    """SMS consent and the parts of long texts."""

    def __init__(self, client: StoreClient) -> None:
        super().__init__(client)
        self._consent_reads = client.batcher("consent.state", self._find_consent_states)

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

    async def opted_out(self, account_id: str, channel: str, address: str) -> bool:
        """Whether ``address`` said STOP on ``channel`` and has not said START since."""
        # asked before every SMS send: batched with the concurrent sends' questions
        return await self._consent_reads.submit(f"{account_id}|{channel}|{address}") == "stop"

    async def _find_consent_states(self, keys: Sequence[str]) -> list[str | None]:
        docs = await self._db.consent.find({"_id": {"$in": list(set(keys))}}, {"state": 1}).to_list()
        states = {doc["_id"]: str(doc.get("state")) for doc in docs}
        return [states.get(key) for key in keys]

    async def sent_sms_parts(self, message_id: str, count: int) -> dict[int, str]:
        """Which of the ``count`` parts of a long outbound text the provider accepted already:
        index -> provider id."""
        ids = [f"{message_id}|{index}" for index in range(count)]
        docs = await self._db.sms_parts.find({"_id": {"$in": ids}}).to_list()
        return {int(d["index"]): str(d["provider_id"]) for d in docs}

    async def note_sms_part(self, message_id: str, index: int, provider_id: str) -> None:
        await self._db.sms_parts.update_one(
            {"_id": f"{message_id}|{index}"},
            {"$set": {"message_id": message_id, "index": index, "provider_id": provider_id}},
            upsert=True,
        )
