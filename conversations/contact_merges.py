"""Manual merges of two contacts, and their undo.

A merge is written as a record (``contact_merges``) *before* anything moves: the plan (which
identity links, addresses, attributes and the name go to the kept contact), then applied step by
step, each step idempotent, the threads moved recorded as they move. A crash midway leaves the
record ``planned``; merging the same two contacts again finishes it. Undo puts back exactly what
the record says moved, plus threads that arrived since on a moved address, and is itself
resumable (``undoing``).

One active merge per absorbed contact: ``active_gone`` (present while the merge stands) is unique.
The record holds addresses, so it is a personal-data holder of both contacts (erased with them).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING, IndexModel
from pymongo.errors import DuplicateKeyError

from conversations.client import IndexPlan, Repository
from conversations.filters import exactly, find_all
from conversations.ids import new_id
from conversations.models import epoch_ms, from_epoch_ms
from conversations.personal_data import ContactScope, query_holder, register_holder
from conversations.search_words import search_text

INDEXES: IndexPlan = {
    "contact_merges": [
        IndexModel(
            [("active_gone", ASCENDING)], unique=True, partialFilterExpression={"active_gone": {"$exists": True}}
        ),
        IndexModel([("account_id", ASCENDING), ("keep_id", ASCENDING), ("at", DESCENDING)]),
        IndexModel([("gone_id", ASCENDING)]),
    ]
}

PLANNED, DONE, UNDOING, UNDONE = "planned", "done", "undoing", "undone"


class MergeConflict(Exception):
    """The absorbed contact is already merged into another one (or another merge of it runs)."""


@dataclass(frozen=True)
class ContactMerge:
    """One merge: ``gone_id`` folded into ``keep_id`` and what moved."""

    id: str
    account_id: str
    keep_id: str
    gone_id: str
    by: str
    at: datetime
    state: str
    links: tuple[str, ...]  # identity link ids moved over
    identities: tuple[dict[str, Any], ...]  # entries added to the kept contact's identities
    attributes: tuple[str, ...]  # attribute keys the absorbed contact filled in
    name_filled: bool
    threads: tuple[str, ...]
    before: dict[str, Any]  # both contacts' updated_at before the merge

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> ContactMerge:
        return cls(
            id=str(doc["_id"]),
            account_id=str(doc["account_id"]),
            keep_id=str(doc["keep_id"]),
            gone_id=str(doc["gone_id"]),
            by=str(doc.get("by", "")),
            at=from_epoch_ms(int(doc["at"])),
            state=str(doc["state"]),
            links=tuple(doc.get("links") or ()),
            identities=tuple(doc.get("identities") or ()),
            attributes=tuple(doc.get("attributes") or ()),
            name_filled=bool(doc.get("name_filled")),
            threads=tuple(doc.get("threads") or ()),
            before=dict(doc.get("before") or {}),
        )


class ContactMergesRepository(Repository):
    """Planning, applying and undoing manual merges of contacts."""

    async def plan_merge(
        self, account_id: str, keep: dict[str, Any], gone: dict[str, Any], by: str, now: datetime
    ) -> ContactMerge:
        """The merge record of ``gone`` into ``keep``: a new one, or the standing one if these two
        were merged already (finished or not). ``MergeConflict`` if ``gone`` stands merged into
        another contact."""
        keep_id, gone_id = str(keep["_id"]), str(gone["_id"])
        links = await self._db.identities.find(exactly(account_id=account_id, contact_id=gone_id), {"_id": 1}).to_list()
        known = list(keep.get("identities") or [])
        values = dict(keep.get("attributes") or {})
        doc = {
            "_id": new_id("mrg"),
            "account_id": account_id,
            "keep_id": keep_id,
            "gone_id": gone_id,
            "active_gone": gone_id,
            "by": by,
            "at": epoch_ms(now),
            "state": PLANNED,
            "links": [str(link["_id"]) for link in links],
            "identities": [i for i in gone.get("identities") or [] if i not in known],
            "attributes": sorted(k for k in (gone.get("attributes") or {}) if k not in values),
            "name_filled": bool(gone.get("name")) and not keep.get("name"),
            "threads": [],
            "before": {"keep": keep.get("updated_at"), "gone": gone.get("updated_at")},
        }
        try:
            await self._db.contact_merges.insert_one(doc)
        except DuplicateKeyError:
            standing = await self._db.contact_merges.find_one({"active_gone": gone_id})
            if standing is None or standing["keep_id"] != keep_id or standing["account_id"] != account_id:
                raise MergeConflict(gone_id) from None
            return ContactMerge.from_doc(standing)
        # give way to a merge at the same time that would leave threads with a merged-away contact:
        # the kept one being merged away (A into B while B into A or into C), or the absorbed one
        # still receiving an unfinished merge (B into C while A into B moves A's threads to B)
        if await self._db.contact_merges.find_one(
            {"$or": [{"active_gone": keep_id}, {"keep_id": gone_id, "state": {"$in": [PLANNED, UNDOING]}}]}, {"_id": 1}
        ):
            await self._db.contact_merges.delete_one({"_id": doc["_id"]})
            raise MergeConflict(keep_id)
        return ContactMerge.from_doc(doc)

    async def apply_merge(self, merge: ContactMerge, gone: dict[str, Any]) -> None:
        """Carry out a planned merge; every step may run again."""
        account_id, keep_id, gone_id = merge.account_id, merge.keep_id, merge.gone_id
        await self._db.identities.update_many(
            {"_id": {"$in": list(merge.links)}, "account_id": account_id}, {"$set": {"contact_id": keep_id}}
        )
        fill: dict[str, Any] = {f"attributes.{k}": gone["attributes"][k] for k in merge.attributes}
        if merge.name_filled:
            fill.update(name=gone["name"], search_text=search_text(gone["name"]))  # and its search terms
        await self._db.contacts.update_one(
            {"_id": keep_id, "account_id": account_id},
            {
                "$addToSet": {"identities": {"$each": list(merge.identities)}},
                "$set": {**fill, "updated_at": epoch_ms(merge.at)},
            },
        )
        await self._db.contacts.update_one(
            {"_id": gone_id, "account_id": account_id}, {"$set": {"merged_into": keep_id}}
        )
        threads = await self._db.threads.find(exactly(account_id=account_id, contact_id=gone_id), {"_id": 1}).to_list()
        moving = [str(t["_id"]) for t in threads]
        if moving:  # recorded before they move, so an undo after a crash finds them
            await self._db.contact_merges.update_one({"_id": merge.id}, {"$addToSet": {"threads": {"$each": moving}}})
        await self._move_threads(account_id, [*merge.threads, *moving], keep_id)
        await self._db.contact_merges.update_one({"_id": merge.id, "state": PLANNED}, {"$set": {"state": DONE}})

    async def undo_merge(self, merge: ContactMerge, by: str, now: datetime) -> None:
        """Put back what ``merge`` moved, and threads opened since on a moved address."""
        account_id, keep_id, gone_id = merge.account_id, merge.keep_id, merge.gone_id
        await self._db.contact_merges.update_one({"_id": merge.id, "state": DONE}, {"$set": {"state": UNDOING}})
        links = await self._db.identities.find({"_id": {"$in": list(merge.links)}}).to_list()
        await self._db.identities.update_many(
            {"_id": {"$in": list(merge.links)}, "account_id": account_id}, {"$set": {"contact_id": gone_id}}
        )
        addresses = [{"channel": str(link["channel"]), "address": str(link["address"])} for link in links]
        phones = [a["address"] for a in addresses if a["channel"] == "phone"]
        # the kept contact's threads at the addresses that go back: part by part on the embedded
        # store, which reads every thread in Python for an $or (find_all)
        arrived = (
            await find_all(
                self._db.threads,
                {
                    **exactly(account_id=account_id, contact_id=keep_id),
                    "$or": [*addresses, *([{"address": {"$in": phones}}] if phones else [])],
                },
            )
            if addresses
            else []
        )
        await self._move_threads(account_id, [*merge.threads, *(str(t["_id"]) for t in arrived)], gone_id)
        keep = {"_id": keep_id, "account_id": account_id}
        await self._db.contacts.update_one(keep, {"$pull": {"identities": {"$in": list(merge.identities)}}})
        gone = await self._db.contacts.find_one({"_id": gone_id, "account_id": account_id}) or {}
        filled = [(f"attributes.{k}", (gone.get("attributes") or {}).get(k)) for k in merge.attributes]
        for field, value in [*filled, *([("name", gone.get("name"))] if merge.name_filled else [])]:
            if value is not None:  # what the merge filled in goes, unless someone changed it since
                gone_too = {"search_text": ""} if field == "name" else {}  # the name's search terms
                await self._db.contacts.update_one({**keep, field: value}, {"$unset": {field: "", **gone_too}})
        for contact_id, key in ((keep_id, "keep"), (gone_id, "gone")):
            if merge.before.get(key) is not None:  # back to its time, unless something happened since
                await self._db.contacts.update_one(
                    {"_id": contact_id, "updated_at": {"$lte": epoch_ms(merge.at)}},
                    {"$set": {"updated_at": merge.before[key]}},
                )
        await self._db.contacts.update_one({"_id": gone_id, "account_id": account_id}, {"$unset": {"merged_into": ""}})
        await self._db.contact_merges.update_one(
            {"_id": merge.id},
            {"$set": {"state": UNDONE, "undone_at": epoch_ms(now), "undone_by": by}, "$unset": {"active_gone": ""}},
        )

    async def _move_threads(self, account_id: str, thread_ids: Sequence[str], contact_id: str) -> None:
        """Threads (and their messages) to ``contact_id``; an open one keeps its open key unless the
        contact has an open thread on that channel already (then the two stay apart)."""
        if not thread_ids:
            return
        ids = sorted(set(thread_ids))
        async for thread in self._db.threads.find({"_id": {"$in": ids}, "account_id": account_id}):
            update: dict[str, Any] = {"contact_id": contact_id}
            if "open_key" in thread:
                update["open_key"] = f"{contact_id}:{thread['channel']}"
            try:
                await self._db.threads.update_one({"_id": thread["_id"]}, {"$set": update})
            except DuplicateKeyError:
                await self._db.threads.update_one(
                    {"_id": thread["_id"]}, {"$set": {"contact_id": contact_id}, "$unset": {"open_key": ""}}
                )
        await self._db.messages.update_many(
            {"thread_id": {"$in": ids}, "account_id": account_id}, {"$set": {"contact_id": contact_id}}
        )

    # --- reading ----------------------------------------------------------------------------

    async def get_merge(self, merge_id: str) -> ContactMerge | None:
        doc = await self._db.contact_merges.find_one({"_id": merge_id})
        return ContactMerge.from_doc(doc) if doc else None

    async def standing_merges(self, account_id: str, keep_id: str, since: datetime) -> list[ContactMerge]:
        """Merges into ``keep_id`` that stand and were made after ``since``, newest first."""
        docs = (
            await self._db.contact_merges.find(
                {**exactly(account_id=account_id, keep_id=keep_id, state=DONE), "at": {"$gt": epoch_ms(since)}}
            )
            .sort("at", DESCENDING)
            .to_list()
        )
        return [ContactMerge.from_doc(doc) for doc in docs]

    async def contact_doc(self, account_id: str, contact_id: str) -> dict[str, Any] | None:
        return await self._db.contacts.find_one({"_id": contact_id, "account_id": account_id})


def _merges_of(scope: ContactScope) -> dict[str, Any] | None:
    ids = sorted(set(scope.contact_ids))
    return {"$or": [{"keep_id": {"$in": ids}}, {"gone_id": {"$in": ids}}]} if ids else None


# a merge record names both contacts' addresses: exported with either, deleted with either
register_holder(query_holder("contact_merges", "contact_merges", _merges_of))
