"""The store's files against their account's quota: a file that would pass it is refused and
nothing of it is kept, files kept at the same instant cannot pass it together, and the quota of
one account is not spent by another's files."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from gridfs import AsyncGridFSBucket

from conversations.files import QuotaExceeded
from conversations.repositories import Repositories
from tests.conftest import raw_database_of


def _file(account: str, message: str, size: int) -> dict[str, Any]:
    return {
        "account_id": account,
        "contact_id": "con_1",
        "thread_id": "thr_1",
        "message_id": message,
        "index": 0,
        "name": f"{message}.bin",
        "content_type": "application/octet-stream",
        "data": b"x" * size,
    }


async def test_a_file_over_the_quota_is_refused_and_nothing_of_it_is_kept(store: Repositories) -> None:
    await store.files.keep(**_file("acme", "msg_a", 60), quota=100)
    with pytest.raises(QuotaExceeded):
        await store.files.keep(**_file("acme", "msg_b", 50), quota=100)
    assert await store.files.usage("acme") == 60
    assert await store.files.cached("acme", "msg_b", 0) is None
    kept = await store.files.keep(**_file("acme", "msg_a", 60), quota=100)  # kept already: the same one
    assert kept.length == 60 and await store.files.usage("acme") == 60
    await store.files.keep(**_file("other", "msg_c", 90), quota=100)  # another account has its own quota
    assert await store.files.usage("acme") == 60 and await store.files.usage("other") == 90


async def test_files_kept_at_the_same_instant_cannot_pass_the_quota_together(store: Repositories) -> None:
    results = await asyncio.gather(
        *(store.files.keep(**_file("acme", f"msg_{n}", 60), quota=100) for n in range(3)), return_exceptions=True
    )
    refused = [r for r in results if isinstance(r, QuotaExceeded)]
    assert len(refused) >= 2 and await store.files.usage("acme") <= 100
    for n, result in enumerate(results):  # a refused file left no record and no bytes
        if isinstance(result, QuotaExceeded):
            assert await store.files.cached("acme", f"msg_{n}", 0) is None


async def test_keeping_a_file_again_after_a_crash_took_its_bytes_writes_them(store: Repositories) -> None:
    kept = await store.files.keep(**_file("acme", "msg_a", 60), quota=100)
    await AsyncGridFSBucket(raw_database_of(store), bucket_name="files").delete(kept.id)  # the record stayed
    assert await store.files.read(kept) is None
    again = await store.files.keep(**_file("acme", "msg_a", 60), quota=100)
    assert again.id == kept.id and await store.files.read(again) == b"x" * 60
