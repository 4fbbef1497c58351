"""Files: the bytes of the attachments customers send, kept in GridFS (bucket ``files``: the
``files.files`` and ``files.chunks`` collections) through the driver, so they live in the store
with the rest of the conversation, are exported and erased with their contact, and count
against their account's quota. Which attachment a file is (account, contact, thread, message, its
place in the message) is kept beside it in ``attachment_files``, one document per attachment
(``<message>:<index>``), where indexes of our own find them.

A customer's file stays with the provider until an agent opens it; it is then fetched once and
kept here under the message and the attachment's place in it (``cached``), so the next look
costs no provider call.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bson import ObjectId
from gridfs import AsyncGridFSBucket
from gridfs.errors import NoFile
from pymongo import ASCENDING, IndexModel

from conversations.client import IndexPlan, Repository, StoreClient
from conversations.filters import exactly, find_all
from conversations.personal_data import ContactScope, Database, Erasure, PersonalDataHolder, register_holder

BUCKET = "files"  # GridFS: the bytes, in files.files and files.chunks
KEPT = "attachment_files"  # ours: which attachment each file is, found by index
INDEXES: IndexPlan = {
    KEPT: [
        IndexModel([("account_id", ASCENDING)]),  # the quota's sum
        IndexModel([("message_id", ASCENDING)]),  # export, erasure and retention
        IndexModel([("contact_id", ASCENDING)]),  # an agent's upload to a contact: export and erasure
        IndexModel([("thread_id", ASCENDING)]),
    ]
}


class QuotaExceeded(Exception):
    """The account's files would take more than its quota."""


@dataclass(frozen=True, slots=True)
class StoredFile:
    """What is known of a file besides its bytes."""

    id: Any
    account_id: str
    contact_id: str
    thread_id: str
    message_id: str
    index: int
    name: str
    content_type: str
    length: int

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> StoredFile:
        return cls(
            id=doc["file_id"],
            account_id=str(doc["account_id"]),
            contact_id=str(doc.get("contact_id", "")),
            thread_id=str(doc.get("thread_id", "")),
            message_id=str(doc["message_id"]),
            index=int(doc.get("index", 0)),
            name=str(doc.get("name") or "file"),
            content_type=str(doc.get("content_type") or "application/octet-stream"),
            length=int(doc.get("length", 0)),
        )


class FilesRepository(Repository):
    """Storing, reading, measuring and deleting the files of attachments."""

    def __init__(self, client: StoreClient) -> None:
        super().__init__(client)
        self._bucket = AsyncGridFSBucket(self._db, bucket_name=BUCKET)
        self._kept = self._db[KEPT]
        self._files = self._db[f"{BUCKET}.files"]

    async def cached(self, account_id: str, message_id: str, index: int) -> StoredFile | None:
        """The file kept for the ``index``-th attachment of a message of the account, if any."""
        doc = await self._kept.find_one(exactly(_id=f"{message_id}:{index}", account_id=account_id))
        return StoredFile.from_doc(doc) if doc else None

    async def keep(
        self,
        *,
        account_id: str,
        contact_id: str,
        thread_id: str,
        message_id: str,
        index: int,
        name: str,
        content_type: str,
        data: bytes,
        quota: int,
    ) -> StoredFile:
        """Store the bytes of an attachment (``QuotaExceeded`` when the account's files would take
        more than ``quota`` bytes: checked again with the file's record written, so files kept at
        the same instant cannot pass it together); a file kept already for that attachment is
        returned instead.

        The record (which contact the file belongs to) is written before the bytes, so a crash in
        between leaves a record whose bytes the next call uploads — never bytes that export and
        erasure cannot find."""
        found = await self.cached(account_id, message_id, index)
        if found is not None:
            if await self._files.find_one({"_id": found.id}, {"_id": 1}) is None:  # a crash took the bytes
                await self._bucket.upload_from_stream_with_id(found.id, name, data)
            return found
        used = await self.usage(account_id)
        if used + len(data) > quota:
            raise QuotaExceeded(f"the account's files take {used} of {quota} bytes; this one has {len(data)}")
        file_id = ObjectId()
        doc = {
            "_id": f"{message_id}:{index}",
            "file_id": file_id,
            "account_id": account_id,
            "contact_id": contact_id,
            "thread_id": thread_id,
            "message_id": message_id,
            "index": index,
            "name": name,
            "content_type": content_type,
            "length": len(data),
        }
        if not await self._insert_once(KEPT, doc):  # another request kept it first: theirs stands
            return await self.keep(
                account_id=account_id,
                contact_id=contact_id,
                thread_id=thread_id,
                message_id=message_id,
                index=index,
                name=name,
                content_type=content_type,
                data=data,
                quota=quota,
            )
        used = await self.usage(account_id)  # this file's record included, and any written meanwhile
        if used > quota:
            await self._kept.delete_one(exactly(_id=doc["_id"], account_id=account_id))
            raise QuotaExceeded(f"the account's files would take {used} of {quota} bytes with this one")
        await self._bucket.upload_from_stream_with_id(file_id, name, data)
        return StoredFile.from_doc(doc)

    async def keep_upload(
        self,
        *,
        upload: str,
        account_id: str,
        contact_id: str,
        thread_id: str,
        name: str,
        content_type: str,
        data: bytes,
        quota: int,
    ) -> StoredFile:
        """Store a file an agent sends to a conversation's contact under ``upload`` (an ``upl_``
        id: the same one finds the file kept already); its key ``<upload>:0`` goes with the reply."""
        return await self.keep(
            account_id=account_id,
            contact_id=contact_id,
            thread_id=thread_id,
            message_id=upload,
            index=0,
            name=name,
            content_type=content_type,
            data=data,
            quota=quota,
        )

    async def read_upload(self, account_id: str, key: str) -> tuple[StoredFile, bytes] | None:
        """An agent's file by the key its reply carries (``upl_…:0``), with its bytes; ``None`` if
        the account has no such file (any more)."""
        upload, _, index = key.partition(":")
        if not index.isascii() or not index.isdigit():
            return None
        stored = await self.cached(account_id, upload, int(index))
        data = await self.read(stored) if stored is not None else None
        return None if stored is None or data is None else (stored, data)

    async def read(self, stored: StoredFile) -> bytes | None:
        """The bytes of a kept file (``None`` if it was deleted meanwhile)."""
        try:
            stream = await self._bucket.open_download_stream(stored.id)
        except NoFile:
            return None
        return await stream.read()

    async def usage(self, account_id: str) -> int:
        """How many bytes the account's files take."""
        cursor = self._kept.find(exactly(account_id=account_id), {"length": 1, "_id": 0})
        return sum(int(doc.get("length", 0)) for doc in await cursor.to_list())

    async def delete(self, stored: StoredFile) -> None:
        await self._kept.delete_one({"_id": f"{stored.message_id}:{stored.index}"})
        try:
            await self._bucket.delete(stored.id)
        except NoFile:
            pass  # deleted meanwhile: the same outcome


# --- export and erasure with the contact (and retention, by message) ---------------------------


def _of_scope(scope: ContactScope) -> dict[str, Any] | None:
    """The contact's files (agents' uploads to them included, found by contact or thread) or, for
    retention, the messages'. The account bare: SQLite then reads each part through the index of
    its own field, not the account's (asked part by part on the embedded store: ``find_all``)."""
    keys = (("message_id", scope.message_ids), ("contact_id", scope.contact_ids), ("thread_id", scope.thread_ids))
    parts = [{k: {"$in": list(v)}} for k, v in keys if v]
    if not parts:
        return None
    return {"$or": parts, "account_id": scope.account_id}


async def _export_files(db: Database, scope: ContactScope) -> list[dict[str, Any]]:
    query = _of_scope(scope)
    if query is None:
        return []
    bucket, found = AsyncGridFSBucket(db, bucket_name=BUCKET), []
    for doc in await find_all(db[KEPT], query, [("_id", ASCENDING)]):
        try:
            content = await (await bucket.open_download_stream(doc["file_id"])).read()
        except NoFile:
            content = b""  # an interrupted erasure took the bytes already
        found.append({**doc, "content": content})
    return found


async def _erase_files(db: Database, scope: ContactScope, erasure: Erasure) -> int:
    query = _of_scope(scope)
    if query is None:
        return 0
    bucket, erased = AsyncGridFSBucket(db, bucket_name=BUCKET), 0
    for doc in await find_all(db[KEPT], query):
        try:  # the bytes first: an interrupted erasure still lists what it has left to do
            await bucket.delete(doc["file_id"])
        except NoFile:
            pass
        erased += (await db[KEPT].delete_one({"_id": doc["_id"]})).deleted_count
    return erased


register_holder(
    PersonalDataHolder("files", (KEPT, f"{BUCKET}.files", f"{BUCKET}.chunks"), _export_files, _erase_files, 20)
)
