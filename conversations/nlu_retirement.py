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
data that is left (:func:`queue_retrain`). Any router process takes it (:func:`claim_retrain`,
whichever accounts it serves), under a lease it renews while it trains: a process that dies
mid-training leaves the job to be taken again once the lease runs out (at most
``RETRAIN_ATTEMPTS`` times). The holder runs after the messages are deleted, so a training that
read the erased examples and stores its version later finds its messages gone and retires it
itself (``bot/nlu/trainer.py``). Activating a version and retiring it may race: each looks again
after its own write (:func:`activate_version`), so a retired version never stays active.

Versions stored before versions recorded their sources get a conservative record once, at
start-up (:func:`backfill_learned_from`): every example with a message id the account had when
the version was trained.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pymongo import ReturnDocument

from conversations.filters import exactly
from conversations.models import epoch_ms
from conversations.personal_data import ContactScope, Database, Erasure, PersonalDataHolder, register_holder

NOT_RETIRED: dict[str, Any] = {"retired_at": {"$exists": False}}
RETRAIN_LEASE_MS = 60_000  # renewed every few seconds while the training runs
RETRAIN_ATTEMPTS = 3  # a retraining whose process died this often is given up (state "failed")
_PENDING_RETRAIN: dict[str, Any] = {"kind": "retrain", "state": {"$in": ["queued", "running"]}}


async def retire_versions(
    db: Database, account_id: str, message_ids: Sequence[str], by: str, at: datetime
) -> list[str]:
    """Retire the account's versions trained on any of ``message_ids``; returns them. An active
    one is replaced by the newest version left (or none): see the module's docstring."""
    if not message_ids:
        return []
    found = await db.nlu_models.find(
        {**exactly(account_id=account_id), "learned_from": {"$in": sorted(set(message_ids))}, **NOT_RETIRED}, {"_id": 1}
    ).to_list()
    versions = [str(doc["_id"]) for doc in found]
    if not versions:
        return []
    at_ms = epoch_ms(at)
    await db.nlu_models.update_many(
        {"_id": {"$in": versions}, "account_id": account_id},
        {"$set": {"retired_at": at_ms, "retired_by": by}, "$unset": {"learned_from": ""}},
    )
    await db.nlu_model_chunks.delete_many({"version": {"$in": versions}})
    active = await db.nlu_active.find_one({"_id": account_id})  # after retiring: see activate_version
    if active and active.get("version") in versions:
        await _fall_back(db, account_id, str(active["version"]), by, at_ms)
    return versions


async def activate_version(db: Database, account_id: str, version: str, by: str, at: datetime) -> bool:
    """Make ``version`` the account's model; ``False`` if it is not one of the account's, or is
    retired. Retiring it meanwhile (:func:`retire_versions` reads the active version after
    retiring) is seen by the look after the switch, which then gives way to the newest version
    left: whichever of the two writes last, the retired version does not stay active."""
    mine = {"_id": version, "account_id": account_id, **NOT_RETIRED}
    if await db.nlu_models.count_documents(mine) == 0:
        return False
    at_ms = epoch_ms(at)
    await db.nlu_active.update_one(
        {"_id": account_id}, {"$set": {"version": version, "activated_at": at_ms, "activated_by": by}}, upsert=True
    )
    if await db.nlu_models.count_documents(mine) == 1:
        return True
    await _fall_back(db, account_id, version, by, at_ms)
    return False


async def _fall_back(db: Database, account_id: str, replaced: str, by: str, at_ms: int) -> None:
    """The retired ``replaced`` gives way to the newest version that is not retired (or none),
    unless another version was activated meanwhile."""
    await db.nlu_models.update_one({"_id": replaced}, {"$set": {"was_active": True}})
    fallback = await db.nlu_models.find_one(
        {**exactly(account_id=account_id), **NOT_RETIRED}, sort=[("created_at", -1)], projection={"_id": 1}
    )
    await db.nlu_active.update_one(
        {"_id": account_id, "version": replaced},
        {
            "$set": {
                "version": str(fallback["_id"]) if fallback else None,
                "activated_at": at_ms,
                "activated_by": by,
                "replaced": replaced,
            }
        },
    )


async def retirement(db: Database, account_id: str, by: str, at: datetime) -> dict[str, Any]:
    """What :func:`retire_versions` did for ``by`` at ``at``: ``retired`` (versions),
    ``replaced`` (the active one among them, or ``None``) and ``active`` (the version now active)."""
    docs = (
        await db.nlu_models.find(
            {**exactly(account_id=account_id), "retired_by": by, "retired_at": epoch_ms(at)},
            {"_id": 1, "was_active": 1},
        )
        .sort("created_at", 1)
        .to_list()
    )
    active = await db.nlu_active.find_one({"_id": account_id})
    return {
        "retired": [str(d["_id"]) for d in docs],
        "replaced": next((str(d["_id"]) for d in docs if d.get("was_active")), None),
        "active": str(active["version"]) if active and active.get("version") else None,
    }


async def queue_retrain(db: Database, account_id: str, job_id: str, by: str, now: datetime) -> None:
    """A training job of the account's data, waiting for a router process (``claim_retrain``)."""
    await db.nlu_jobs.insert_one(
        {
            "_id": job_id,
            "account_id": account_id,
            "kind": "retrain",
            "state": "queued",
            "stage": "queued",
            "done": 0,
            "total": 0,
            "by": by,
            "attempts": 0,
            "started_at": epoch_ms(now),
            "updated_at": epoch_ms(now),
        }
    )


async def pending_retrain(db: Database, account_id: str) -> str | None:
    """The account's retraining that is queued or running, if any."""
    job = await db.nlu_jobs.find_one({"account_id": account_id, **_PENDING_RETRAIN}, {"_id": 1})
    return str(job["_id"]) if job else None


async def claim_retrain(db: Database, owner: str, now: datetime) -> dict[str, Any] | None:
    """Lease the oldest retraining of any account that is queued, or running under a lease that
    ran out (its process died): the job (``_id``, ``account_id``, ``by``), or ``None``. A job
    taken more than ``RETRAIN_ATTEMPTS`` times fails instead."""
    now_ms = epoch_ms(now)
    # the oldest of each kind read through the (state, started_at) index, the older one claimed
    # (if another process took it meanwhile, the next poll tries again): one $or would make the
    # embedded store read every job in Python
    kinds = (exactly(state="queued"), {**exactly(state="running", kind="retrain"), "lease_until": {"$lt": now_ms}})
    oldest = await asyncio.gather(
        *(db.nlu_jobs.find_one(kind, {"started_at": 1}, sort=[("started_at", 1)]) for kind in kinds)
    )
    candidates = [(found["started_at"], found["_id"], kind) for found, kind in zip(oldest, kinds) if found]
    if not candidates:
        return None
    _, job_id, kind = min(candidates, key=lambda candidate: candidate[0])
    job = await _claim(db, {"_id": job_id, **kind}, owner, now_ms)
    if job is None or int(job.get("attempts") or 0) <= RETRAIN_ATTEMPTS:
        return job
    await db.nlu_jobs.update_one(
        {"_id": job["_id"], "owner": owner},
        {
            "$set": {
                "state": "failed",
                "error": f"given up: {RETRAIN_ATTEMPTS} attempts ended with their router process",
            }
        },
    )
    return None


async def _claim(db: Database, query: dict[str, Any], owner: str, now_ms: int) -> dict[str, Any] | None:
    """Lease the retraining job matching ``query`` to ``owner`` (counting an attempt)."""
    job: dict[str, Any] | None = await db.nlu_jobs.find_one_and_update(
        query,
        {
            "$set": {
                "state": "running",
                "stage": "loading",
                "owner": owner,
                "lease_until": now_ms + RETRAIN_LEASE_MS,
                "updated_at": now_ms,
            },
            "$inc": {"attempts": 1},
        },
        return_document=ReturnDocument.AFTER,
    )
    return job


async def renew_retrain(db: Database, job_id: str, owner: str, now: datetime) -> None:
    """Keep the lease of a retraining this process runs."""
    await db.nlu_jobs.update_one(
        {"_id": job_id, "owner": owner, "state": "running"}, {"$set": {"lease_until": epoch_ms(now) + RETRAIN_LEASE_MS}}
    )


async def backfill_learned_from(db: Database) -> int:
    """Give versions stored before ``learned_from`` existed a conservative one; returns how many."""
    count = 0
    async for doc in db.nlu_models.find(
        {"learned_from": {"$exists": False}, **NOT_RETIRED}, {"account_id": 1, "created_at": 1}
    ):
        examples = await db.nlu_examples.find(
            {
                "account_id": doc["account_id"],
                "created_at": {"$lte": doc["created_at"]},
                "message_id": {"$exists": True},
            },
            {"message_id": 1},
        ).to_list()
        learned = sorted({str(e["message_id"]) for e in examples})
        await db.nlu_models.update_one({"_id": doc["_id"]}, {"$set": {"learned_from": learned}})
        count += 1
    return count


async def _export(db: Database, scope: ContactScope) -> list[dict[str, Any]]:
    """The versions trained on the contact's messages (without the other customers' ids)."""
    if not scope.message_ids:
        return []
    return (
        await db.nlu_models.find(
            {**exactly(account_id=scope.account_id), "learned_from": {"$in": sorted(set(scope.message_ids))}},
            {"learned_from": 0},
        )
        .sort("created_at", 1)
        .to_list()
    )


async def _retire(db: Database, scope: ContactScope, erasure: Erasure) -> int:
    return len(await retire_versions(db, scope.account_id, scope.message_ids, erasure.id, erasure.at))


# after messages (80), threads, identities and contacts: see the module's docstring
register_holder(PersonalDataHolder("nlu_models", ("nlu_models", "nlu_model_chunks"), _export, _retire, 99))
