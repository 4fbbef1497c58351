"""Personal data: finding everything of one contact, exporting it, erasing it through the
registered holders (``personal_data.py``), the web chat visitors of erased contacts, and the
retention job's batches (and the lease that runs it once across router processes).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from pymongo import ASCENDING, IndexModel, ReturnDocument
from pymongo.errors import DuplicateKeyError

from conversations import files as _files  # noqa: F401  (registers the files' holder)
from conversations import personal_holders as _core_holders  # noqa: F401  (registers the core holders)
from conversations.client import IndexPlan, Repository, StoreClient
from conversations.filters import exactly
from conversations.personal_data import ContactScope, Erasure, declare_not_personal, holders

# what erasure and retention find documents by (no array fields: the embedded server stops
# matching array elements once one is indexed)
INDEXES: IndexPlan = {
    "messages": [IndexModel([("account_id", ASCENDING), ("created_at", ASCENDING)])],
    "contacts": [IndexModel([("merged_into", ASCENDING)], partialFilterExpression={"merged_into": {"$exists": True}})],
    "identities": [IndexModel([("account_id", ASCENDING), ("address", ASCENDING)])],
    # the sent items releases before issue 19 left in their outbox collection (outbox.py)
    "outbox": [IndexModel([("thread_id", ASCENDING)]), IndexModel([("message_id", ASCENDING)])],
    "email_keys": [IndexModel([("contact_id", ASCENDING)]), IndexModel([("thread_id", ASCENDING)])],
    "sms_parts": [IndexModel([("message_id", ASCENDING)])],
    "consent": [IndexModel([("account_id", ASCENDING), ("address", ASCENDING)])],
}

_MERGE_DEPTH = 20  # merge chains are short; this only stops a corrupt loop


class PrivacyRepository(Repository):
    """A contact's scope, export and erasure; revoked web chat visitors; retention's batches."""

    def __init__(self, client: StoreClient) -> None:
        super().__init__(client)
        self._revocation_reads = client.batcher("webchat_tokens.revoked", self._find_revocations)

    async def contact_scope(self, account_id: str, contact_id: str) -> ContactScope | None:
        """Everything that belongs to the contact (following merges both ways), in the account
        only; ``None`` if the account has no such contact."""
        doc = await self._db.contacts.find_one({"_id": contact_id, "account_id": account_id})
        for _ in range(_MERGE_DEPTH):
            if doc is None or not doc.get("merged_into"):
                break
            doc = await self._db.contacts.find_one({"_id": doc["merged_into"], "account_id": account_id})
        if doc is None:
            return None
        ids, frontier, docs = [str(doc["_id"])], [str(doc["_id"])], [doc]
        # every lookup by several contacts' ids: one query a contact on the embedded store (_find_each),
        # the account a bare equality there so that SQLite reads the contact's index, not the
        # account's (the threads' index leads with the account: $eq)
        own = {"account_id": account_id}
        for _ in range(_MERGE_DEPTH):
            merged = await self._find_each("contacts", "merged_into", frontier, own)
            frontier = [str(d["_id"]) for d in merged if str(d["_id"]) not in ids]
            if not frontier:
                break
            ids += frontier
            docs += [d for d in merged if str(d["_id"]) in frontier]
        keys: dict[str, None] = {}
        for d in docs:
            keys.update({f"{i['channel']}:{i['address']}": None for i in d.get("identities") or []})
        for link in await self._find_each("identities", "contact_id", ids, own):
            keys[f"{link['channel']}:{link['address']}"] = None
        addresses = {key.split(":", 1)[1]: None for key in keys}
        threads = await self._find_each("threads", "contact_id", ids, exactly(account_id=account_id), {"address": 1})
        addresses.update({str(t["address"]): None for t in threads if t.get("address")})
        messages = await self._find_each("messages", "contact_id", ids, own, {"text": 1, "edits": 1, "sender": 1})
        return ContactScope(
            account_id=account_id,
            contact_id=ids[0],
            contact_ids=tuple(ids),
            addresses=tuple(addresses),
            identity_keys=tuple(keys),
            thread_ids=tuple(str(t["_id"]) for t in threads),
            message_ids=tuple(str(m["_id"]) for m in messages),
            texts=_texts(messages),
        )

    # --- web chat visitors of erased contacts ---------------------------------------------

    async def revoke_visitors(self, account_id: str, visitors: Sequence[str], now_ms: int) -> None:
        """Refuse web chat tokens naming these visitors from now on (their contact was erased):
        a browser still holding one becomes a new visitor. Kept as hashes of the visitor ids."""
        for visitor in visitors:
            await self._db.webchat_tokens.update_one(
                {"_id": _visitor_key(account_id, visitor)},
                {"$setOnInsert": {"account_id": account_id, "at_ms": now_ms}},
                upsert=True,
            )

    async def visitor_revoked(self, account_id: str, visitor: str) -> bool:
        return await self._revocation_reads.submit(_visitor_key(account_id, visitor))  # batched

    async def _find_revocations(self, keys: Sequence[str]) -> list[bool]:
        docs = await self._db.webchat_tokens.find({"_id": {"$in": list(set(keys))}}, {"_id": 1}).to_list()
        revoked = {str(doc["_id"]) for doc in docs}
        return [key in revoked for key in keys]

    async def legacy_tokens_until(self, until_ms: int) -> int:
        """Until when web chat tokens of the previous format (no issue time) are honoured: set
        once, by the first router of this release to meet one, to ``until_ms``."""
        await self._db.webchat_tokens.update_one(
            {"_id": "legacy-tokens"}, {"$setOnInsert": {"until_ms": until_ms}}, upsert=True
        )
        doc = await self._db.webchat_tokens.find_one({"_id": "legacy-tokens"})
        return int(doc["until_ms"]) if doc else until_ms

    async def export_personal_data(self, scope: ContactScope) -> dict[str, list[dict[str, Any]]]:
        """Every holder's documents for the scope, by holder name (raw stored documents)."""
        return {holder.name: await holder.export(self._db, scope) for holder in holders()}

    async def erase_personal_data(self, scope: ContactScope, erasure: Erasure) -> dict[str, int]:
        """Run every holder's erasure; returns how many documents each removed or anonymised."""
        return {holder.name: await holder.erase(self._db, scope, erasure) for holder in holders()}

    # --- retention ----------------------------------------------------------------------

    async def old_messages(self, account_id: str, before_ms: int, limit: int = 500) -> ContactScope | None:
        """A batch of the account's messages created before ``before_ms``, as a scope for the
        holders (messages and what hangs off them); ``None`` when none is left."""
        docs = (
            await self._db.messages.find(
                {**exactly(account_id=account_id), "created_at": {"$lt": before_ms}}, {"text": 1, "edits": 1}
            )
            .sort("created_at", ASCENDING)
            .limit(limit)
            .to_list()
        )
        if not docs:
            return None
        return ContactScope(account_id=account_id, message_ids=tuple(str(d["_id"]) for d in docs), texts=_texts(docs))

    async def claim_job(self, name: str, now_ms: int, every_ms: int) -> bool:
        """Whether this process runs job ``name`` now: at most once per ``every_ms`` across all
        router processes sharing the store."""
        try:
            doc = await self._db.jobs.find_one_and_update(
                {"_id": name, "due_ms": {"$lte": now_ms}},
                {"$set": {"due_ms": now_ms + every_ms}},
                upsert=True,
                return_document=ReturnDocument.AFTER,
            )
        except DuplicateKeyError:  # not due: the upsert collided with the existing lease
            return False
        return doc is not None


def _visitor_key(account_id: str, visitor: str) -> str:
    return "rev:" + hashlib.sha256(f"{account_id}|{visitor}".encode()).hexdigest()


def _texts(messages: list[dict[str, Any]]) -> tuple[str, ...]:
    texts: dict[str, None] = {}
    for message in messages:
        if message.get("text"):
            texts[str(message["text"])] = None
        for edit in message.get("edits") or []:
            if isinstance(edit, dict) and edit.get("text"):
                texts[str(edit["text"])] = None
    return tuple(texts)


declare_not_personal(
    "webchat_tokens",
    "hashes of erased contacts' web chat visitor ids (their old tokens get a "
    "new visitor), and until when tokens of the previous format are honoured",
)
