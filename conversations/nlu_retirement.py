"""Model versions trained on customers' messages: which they are, and retiring them on erasure.

A trained model keeps what it learned from its examples' texts: the lexical tier's vocabulary
(word and character n-grams, so an e-mail address or a phone number in a learned example is in
it) with their TF-IDF weights, and the semantic tier's support vectors (the texts' embeddings).
Deleting a customer's learned examples therefore does not take their words out of the models
trained on them. So every version records the customer messages its examples came from
(``learned_from``: the message ids of "learn from conversations" examples and of API examples
that named one), and erasing those messages *retires* the version: its blob is deleted, its
version document stays as a record (``retired_at``, ``retired_by``: the erasure's receipt) and can
no longer be activated. Versions trained on the starter files alone are never touched.

When the account's active version is retired, a live bot must keep answering without it: the
newest version that is not retired becomes active at once (a clean, if older, model), or none
when there is none (conversations then go to humans), and the caller queues a retraining on the
data that is left (:func:`queue_retrain`), which a router process picks up and activates. The
holder runs after the messages are deleted, so a training that read the erased examples and
stores its version later finds its messages gone and retires it itself (``bot/nlu/trainer.py``).

Versions stored before versions recorded their sources get a conservative record once, at
start-up (:func:`backfill_learned_from`): every example with a message id the account had when
the version was trained.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from conversations.models import epoch_ms
from conversations.personal_data import ContactScope, Database, Erasure, PersonalDataHolder, register_holder

NOT_RETIRED: dict[str, Any] = {"retired_at": {"$exists": False}}


async def retire_versions(db: Database, account_id: str, message_ids: Sequence[str], by: str,
                          at: datetime) -> list[str]:
    """Retire the account's versions trained on any of ``message_ids``; returns them. An active
    one is replaced by the newest version left (or none): see the module's docstring."""
    if not message_ids:
        return []
    found = await db.nlu_models.find(
        {"account_id": account_id, "learned_from": {"$in": sorted(set(message_ids))}, **NOT_RETIRED}, {"_id": 1}
    ).to_list()
    versions = [str(doc["_id"]) for doc in found]
    if not versions:
        return []
    at_ms = epoch_ms(at)
    active = await db.nlu_active.find_one({"_id": account_id})
    replaced = str(active["version"]) if active and active.get("version") in versions else None
    await db.nlu_models.update_many(
        {"_id": {"$in": versions}, "account_id": account_id},
        {"$set": {"retired_at": at_ms, "retired_by": by}, "$unset": {"learned_from": ""}},
    )
    await db.nlu_model_chunks.delete_many({"version": {"$in": versions}})
    if replaced is not None:
        await db.nlu_models.update_one({"_id": replaced}, {"$set": {"was_active": True}})
        fallback = await db.nlu_models.find_one({"account_id": account_id, **NOT_RETIRED},
                                                sort=[("created_at", -1)], projection={"_id": 1})
        await db.nlu_active.update_one({"_id": account_id}, {"$set": {
            "version": str(fallback["_id"]) if fallback else None, "activated_at": at_ms, "activated_by": by,
            "replaced": replaced}})
    return versions


async def retirement(db: Database, account_id: str, by: str, at: datetime) -> dict[str, Any]:
    """What :func:`retire_versions` did for ``by`` at ``at``: ``retired`` (versions),
    ``replaced`` (the active one among them, or ``None``) and ``active`` (the version now active)."""
    docs = await db.nlu_models.find({"account_id": account_id, "retired_by": by, "retired_at": epoch_ms(at)},
                                    {"_id": 1, "was_active": 1}).sort("created_at", 1).to_list()
    active = await db.nlu_active.find_one({"_id": account_id})
    return {"retired": [str(d["_id"]) for d in docs],
            "replaced": next((str(d["_id"]) for d in docs if d.get("was_active")), None),
            "active": str(active["version"]) if active and active.get("version") else None}


async def queue_retrain(db: Database, account_id: str, job_id: str, by: str, now: datetime) -> None:
    """A training job of the account's data, waiting for a router process (``claim_retrain``)."""
    await db.nlu_jobs.insert_one({"_id": job_id, "account_id": account_id, "state": "queued", "stage": "queued",
                                  "done": 0, "total": 0, "by": by, "started_at": epoch_ms(now),
                                  "updated_at": epoch_ms(now)})
    await db.nlu_active.update_one({"_id": account_id}, {"$set": {"retrain_job": job_id}}, upsert=True)


async def claim_retrain(db: Database, account_id: str, job_id: str, owner: str, now: datetime) -> str | None:
    """Take the queued job (one router process runs it): who queued it, or ``None`` if another
    process took it."""
    await db.nlu_active.update_one({"_id": account_id, "retrain_job": job_id}, {"$unset": {"retrain_job": ""}})
    claimed = await db.nlu_jobs.find_one_and_update(
        {"_id": job_id, "account_id": account_id, "state": "queued"},
        {"$set": {"state": "running", "stage": "loading", "owner": owner, "updated_at": epoch_ms(now)}})
    return None if claimed is None else str(claimed.get("by") or "system")


async def backfill_learned_from(db: Database) -> int:
    """Give versions stored before ``learned_from`` existed a conservative one; returns how many."""
    count = 0
    async for doc in db.nlu_models.find({"learned_from": {"$exists": False}, **NOT_RETIRED},
                                        {"account_id": 1, "created_at": 1}):
        examples = await db.nlu_examples.find(
            {"account_id": doc["account_id"], "created_at": {"$lte": doc["created_at"]},
             "message_id": {"$exists": True}}, {"message_id": 1}).to_list()
        learned = sorted({str(e["message_id"]) for e in examples})
        await db.nlu_models.update_one({"_id": doc["_id"]}, {"$set": {"learned_from": learned}})
        count += 1
    return count


async def _export(db: Database, scope: ContactScope) -> list[dict[str, Any]]:
    """The versions trained on the contact's messages (without the other customers' ids)."""
    if not scope.message_ids:
        return []
    return await db.nlu_models.find(
        {"account_id": scope.account_id, "learned_from": {"$in": sorted(set(scope.message_ids))}},
        {"learned_from": 0}).sort("created_at", 1).to_list()


async def _retire(db: Database, scope: ContactScope, erasure: Erasure) -> int:
    return len(await retire_versions(db, scope.account_id, scope.message_ids, erasure.id, erasure.at))


# after messages (80), threads, identities and contacts: see the module's docstring
register_holder(PersonalDataHolder("nlu_models", ("nlu_models", "nlu_model_chunks"), _export, _retire, 99))
