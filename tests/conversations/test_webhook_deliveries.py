"""Storing an event's webhook deliveries when the store refuses some of them."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from pymongo.errors import BulkWriteError

from conversations.client import StoreClient
from conversations.errors import StoreUnavailable
from conversations.models import utcnow
from conversations.tenant_models import WebhookSubscription
from conversations.webhooks import WebhooksRepository


class RefusingDeliveries:
    """A ``webhook_deliveries`` collection whose ``insert_many`` answers with ``details``, as
    MongoDB does for an unordered insert some of whose documents it did not write."""

    def __init__(self, details: dict[str, Any]) -> None:
        self._details = details

    async def insert_many(self, docs: list[dict[str, Any]], ordered: bool) -> None:
        raise BulkWriteError(self._details)


async def _enqueue(details: dict[str, Any]) -> int:
    client = StoreClient.connect("mongodb://127.0.0.1:9/?directConnection=true", "unused")  # never reached
    try:
        repository = WebhooksRepository(client)
        repository._db = SimpleNamespace(webhook_deliveries=RefusingDeliveries(details))  # type: ignore[assignment]
        subscriptions = [
            WebhookSubscription(f"wh_{n}", "acme", "https://example.com/hook", ["thread.created"], "s", utcnow())
            for n in range(3)
        ]
        return await repository.enqueue_deliveries(subscriptions, "evt_1", "thread.created", "{}", utcnow(), "thr_1")
    finally:
        await client.close()


async def test_deliveries_published_before_are_not_stored_twice() -> None:
    duplicates = {"writeErrors": [{"index": 0, "code": 11000, "errmsg": "E11000 duplicate key"}], "nInserted": 2}
    assert await _enqueue(duplicates) == 2


@pytest.mark.parametrize(
    "details",
    [
        {"writeErrors": [{"index": 1, "code": 262, "errmsg": "exceeded time limit"}], "nInserted": 2},
        {"writeErrors": [], "writeConcernErrors": [{"code": 64, "errmsg": "wtimeout"}], "nInserted": 3},
    ],
    ids=["a transient write error", "not confirmed durably"],
)
async def test_deliveries_the_store_did_not_keep_fail_as_an_outage(details: dict[str, Any]) -> None:
    """Taken for duplicates, they would be dropped, and the receivers would never get the event."""
    with pytest.raises(StoreUnavailable):
        await _enqueue(details)


async def test_a_delivery_refused_for_another_reason_is_an_error() -> None:
    with pytest.raises(BulkWriteError):
        await _enqueue({"writeErrors": [{"index": 1, "code": 8, "errmsg": "disk is full"}], "nInserted": 2})
