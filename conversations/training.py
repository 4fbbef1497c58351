"""An account's editable training data: its examples (``nlu_examples``),
its intents and entity resources (``nlu_data``, one document per account), and the customer
messages admins review to learn from ("learn from conversations").

An example's id derives from the account and its normalised text, so one text is an example of
at most one intent of an account: adding it twice, or importing a file twice, adds nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING, IndexModel, ReturnDocument
from pymongo.errors import BulkWriteError

from conversations.client import IndexPlan, Repository
from conversations.filters import exactly, find_sorted
from conversations.ids import derived_id
from conversations.models import epoch_ms
from conversations.personal_data import declare_not_personal

INDEXES: IndexPlan = {
    "nlu_examples": [IndexModel([("account_id", ASCENDING), ("intent", ASCENDING)])],
    "messages": [IndexModel([("account_id", ASCENDING), ("direction", ASCENDING), ("created_at", DESCENDING)])],
}
# what a customer message's dispatch says when the bot did not understand it or humans took it
UNSURE_REASONS = ("fallback", "clarify", "low_confidence", "nlu_unavailable")
HUMAN_ACTIONS = ("queued", "waiting", "to_agent")


BOT_PARTS = ("responses", "domain", "rules")  # the texts of the bot's content, as its files are named


class ForeignMessage(ValueError):
    """An example names a message that is not one of the account's customer messages."""


def example_id(account_id: str, text: str) -> str:
    """The id of ``text`` as an example of the account: case and spacing do not matter."""
    return derived_id("exm", f"{account_id}|{' '.join(text.casefold().split())}")


class TrainingRepository(Repository):
    """Examples, intents and entity resources, and the messages admins review to learn from."""

    # --- the account's data document ------------------------------------------------------

    async def nlu_data(self, account_id: str) -> dict[str, Any] | None:
        """The account's intents and entity resources; ``None`` while it trains from the files."""
        return await self._db.nlu_data.find_one({"_id": account_id})

    async def save_nlu_data(self, account_id: str, now: datetime, **fields: Any) -> None:
        await self._db.nlu_data.update_one(
            {"_id": account_id}, {"$set": {**fields, "updated_at": epoch_ms(now)}}, upsert=True
        )

    async def set_nlu_intents(self, account_id: str, intents: Sequence[str], now: datetime) -> None:
        """The account's declared intents (a whole list: the embedded server mangles ``$push``)."""
        await self._db.nlu_data.update_one(
            {"_id": account_id}, {"$set": {"intents": sorted(set(intents)), "updated_at": epoch_ms(now)}}
        )

    # --- the bot's content as edited in the console (``bot/router/dialogue/content.py``) ------

    async def bot_draft(self, account_id: str) -> dict[str, Any] | None:
        """The account's edited answers, forms and rules (``BOT_PARTS``: texts), who saved them and
        when; ``None`` while it uses the files."""
        return await self._db.bot_drafts.find_one({"_id": account_id})

    async def save_bot_draft(self, account_id: str, content: Mapping[str, str], by: str, now: datetime) -> None:
        doc = {"_id": account_id, **content, "updated_by": by, "updated_at": epoch_ms(now)}
        await self._db.bot_drafts.replace_one({"_id": account_id}, doc, upsert=True)

    # --- examples ---------------------------------------------------------------------------

    async def insert_nlu_examples(
        self, account_id: str, examples: Iterable[Mapping[str, Any]], now: datetime
    ) -> list[str]:
        """Store examples that are not there yet (by text); the ids of those inserted, in order.
        Raises ``ForeignMessage`` (storing nothing) when one names a ``message_id`` that is not a
        customer message of the account: an example is personal data of the customer it came
        from, exported and erased with them, so it may only name the account's own."""
        examples = list(examples)
        await self._check_own_messages(account_id, [str(e["message_id"]) for e in examples if e.get("message_id")])
        docs, seen = [], set()
        for example in examples:
            key = example_id(account_id, str(example["text"]))
            if key not in seen:
                seen.add(key)
                docs.append({"_id": key, "account_id": account_id, "created_at": epoch_ms(now), **example})
        if not docs:
            return []
        try:
            await self._db.nlu_examples.insert_many(docs, ordered=False)
            failed: set[int] = set()
        except BulkWriteError as exc:  # texts that are examples already: skipped
            errors = exc.details.get("writeErrors", [])
            if any(err.get("code") != 11000 for err in errors):
                raise
            failed = {int(err["index"]) for err in errors}
        return [doc["_id"] for n, doc in enumerate(docs) if n not in failed]

    async def _check_own_messages(self, account_id: str, message_ids: Sequence[str]) -> None:
        wanted = sorted(set(message_ids))
        if not wanted:
            return
        found = await self._db.messages.find(
            {"_id": {"$in": wanted}, "account_id": account_id, "direction": "in"}, {"_id": 1}
        ).to_list()
        missing = sorted(set(wanted) - {str(doc["_id"]) for doc in found})
        if missing:
            raise ForeignMessage(f"message_id {missing[0][:80]!r} is not a customer message of this account")

    async def nlu_example(self, account_id: str, example: str) -> dict[str, Any] | None:
        return await self._db.nlu_examples.find_one({"_id": example, "account_id": account_id})

    async def nlu_examples_of(self, account_id: str, intent: str | None = None) -> list[dict[str, Any]]:
        query = exactly(account_id=account_id, **({"intent": intent} if intent is not None else {}))
        return await self._db.nlu_examples.find(query).sort("created_at", ASCENDING).to_list()

    async def nlu_intent_counts(self, account_id: str) -> dict[str, int]:
        rows = await (
            await self._db.nlu_examples.aggregate(
                [{"$match": {"account_id": account_id}}, {"$group": {"_id": "$intent", "n": {"$sum": 1}}}]
            )
        ).to_list()
        return {str(row["_id"]): int(row["n"]) for row in rows}

    async def update_nlu_example(
        self, account_id: str, example: str, now: datetime, **fields: Any
    ) -> dict[str, Any] | None:
        return await self._db.nlu_examples.find_one_and_update(
            {"_id": example, "account_id": account_id},
            {"$set": {**fields, "updated_at": epoch_ms(now)}},
            return_document=ReturnDocument.AFTER,
        )

    async def delete_nlu_example(self, account_id: str, example: str) -> bool:
        result = await self._db.nlu_examples.delete_one({"_id": example, "account_id": account_id})
        return result.deleted_count == 1

    async def delete_nlu_intent_examples(self, account_id: str, intent: str) -> int:
        result = await self._db.nlu_examples.delete_many({"account_id": account_id, "intent": intent})
        return int(result.deleted_count)

    # --- learning from conversations -------------------------------------------------------

    async def messages_to_review(self, account_id: str, limit: int = 50, scan: int = 2000) -> list[dict[str, Any]]:
        """The newest customer messages the bot did not understand, or that humans handled, and
        that nobody has reviewed yet. On the embedded store each reason is asked as a plain query
        through the account's messages by time and the answers merged (``filters.find_sorted``):
        it reads every message of the store in Python for the ``$or``."""
        query = {
            **exactly(account_id=account_id, direction="in"),
            "nlu_review": {"$exists": False},
            "text": {"$gt": ""},
            "$or": [
                {"decision.reason": {"$in": list(UNSURE_REASONS)}},
                {"decision.action": {"$in": list(HUMAN_ACTIONS)}},
                exactly(**{"nlu.intent": "out_of_scope"}),
            ],
        }
        return await find_sorted(
            self._db.messages,
            query,
            [("created_at", DESCENDING)],
            min(limit, scan),
            projection={"text": 1, "nlu": 1, "decision": 1, "created_at": 1, "channel": 1},
            split=await self._client.is_embedded_server(),
        )

    async def customer_message(self, account_id: str, message_id: str) -> dict[str, Any] | None:
        return await self._db.messages.find_one(
            {"_id": message_id, "account_id": account_id, "direction": "in"},
            {"text": 1, "nlu": 1, "nlu_review": 1, "thread_id": 1},
        )

    async def mark_reviewed(self, message_id: str, outcome: str, by: str, now: datetime) -> None:
        await self._db.messages.update_one(
            {"_id": message_id}, {"$set": {"nlu_review": {"outcome": outcome, "by": by, "at": epoch_ms(now)}}}
        )


declare_not_personal("nlu_data", "an account's intent names and entity resources (synonyms, regexes, lookups)")
declare_not_personal("bot_drafts", "an account's answers, forms and rules as its admins edited them")
