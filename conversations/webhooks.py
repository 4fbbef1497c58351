"""Webhooks: where an account's thread events are POSTed (subscriptions, their secrets sealed at rest
like channel secrets) and the deliveries on their way there, the outbox's pattern for HTTP
callbacks.

One delivery document per (subscription, event), its ``_id`` derived from both, so
publishing the same event twice (a replayed dispatch, two router processes) stores it once. A
worker leases a due delivery with an atomic ``find_one_and_update`` that pushes ``due_ms`` to the
lease's end; a worker that dies leaves the delivery to the next one once the lease runs out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from pymongo import ASCENDING, DESCENDING, IndexModel, ReturnDocument
from pymongo.errors import BulkWriteError

from conversations.client import IndexPlan, Repository
from conversations.filters import exactly
from conversations.ids import derived_id
from conversations.models import epoch_ms
from conversations.personal_data import ContactScope, declare_not_personal, query_holder, register_holder
from conversations.sealing import SealingError
from conversations.tenant_models import DeliveryState, WebhookDelivery, WebhookSubscription

INDEXES: IndexPlan = {
    "webhook_subscriptions": [IndexModel([("account_id", ASCENDING), ("created_at", ASCENDING)])],
    "webhook_deliveries": [
        IndexModel([("state", ASCENDING), ("due_ms", ASCENDING)]),
        IndexModel([("subscription_id", ASCENDING), ("created_at", DESCENDING)]),
        IndexModel([("subscription_id", ASCENDING), ("state", ASCENDING)]),  # the account page's counts
        IndexModel([("thread_id", ASCENDING)]),
        IndexModel([("message_id", ASCENDING)], partialFilterExpression={"message_id": {"$exists": True}}),
    ],
}


class WebhooksRepository(Repository):
    """Webhook subscriptions and their durable, leased deliveries."""

    # --- webhook subscriptions -----------------------------------------------------------

    async def create_webhook(self, subscription: WebhookSubscription) -> None:
        doc = subscription.to_doc()
        doc["secret"] = self._client.seal_value(
            subscription.account_id, webhook_secret_field(subscription.id), subscription.secret
        )
        await self._db.webhook_subscriptions.insert_one(doc)

    def _subscription(self, doc: Mapping[str, Any]) -> WebhookSubscription:
        """The subscription with its secret opened; one that does not open is left empty and
        said why (``secret_problem``): nothing is signed with it."""
        opened = dict(doc)
        try:
            opened["secret"] = self._client.open_value(
                str(doc.get("account_id")), webhook_secret_field(doc["_id"]), doc.get("secret")
            )
        except SealingError as exc:
            opened["secret"], opened["secret_problem"] = "", str(exc)
        return WebhookSubscription.from_doc(opened)

    async def get_webhook(self, subscription_id: str) -> WebhookSubscription | None:
        doc = await self._db.webhook_subscriptions.find_one({"_id": subscription_id})
        return self._subscription(doc) if doc else None

    async def list_webhooks(self, account_id: str, active_only: bool = False) -> list[WebhookSubscription]:
        query: dict[str, Any] = {"account_id": account_id}
        if active_only:
            query["active"] = True
        docs = await self._db.webhook_subscriptions.find(query).sort("created_at", ASCENDING).to_list()
        return [self._subscription(doc) for doc in docs]

    async def update_webhook(self, account_id: str, subscription_id: str, **values: Any) -> WebhookSubscription | None:
        """Change a subscription (url, events, description, active, secret — sealed here)."""
        if "secret" in values:
            values["secret"] = self._client.seal_value(
                account_id, webhook_secret_field(subscription_id), values["secret"]
            )
        doc = await self._db.webhook_subscriptions.find_one_and_update(
            {"_id": subscription_id, "account_id": account_id}, {"$set": values}, return_document=ReturnDocument.AFTER
        )
        return self._subscription(doc) if doc else None

    async def delete_webhook(self, account_id: str, subscription_id: str) -> bool:
        result = await self._db.webhook_subscriptions.delete_one({"_id": subscription_id, "account_id": account_id})
        if result.deleted_count:
            await self._db.webhook_deliveries.delete_many({"subscription_id": subscription_id, "state": "pending"})
        return result.deleted_count == 1

    # --- deliveries ----------------------------------------------------------------------

    async def enqueue_deliveries(
        self,
        subscriptions: Sequence[WebhookSubscription],
        event_id: str,
        event_type: str,
        body: str,
        now: datetime,
        thread_id: str,
        message_id: str | None = None,
    ) -> int:
        """One pending delivery of the event per subscription; returns how many were new."""
        docs = [
            WebhookDelivery(
                id=derived_id("whd", f"{s.id}|{event_id}"),
                account_id=s.account_id,
                subscription_id=s.id,
                event_id=event_id,
                event_type=event_type,
                body=body,
                state=DeliveryState.PENDING,
                due_ms=epoch_ms(now),
                created_at=now,
                thread_id=thread_id,
                message_id=message_id,
            ).to_doc()
            for s in subscriptions
        ]
        if not docs:
            return 0
        try:
            result = await self._db.webhook_deliveries.insert_many(docs, ordered=False)
            return len(result.inserted_ids)
        except BulkWriteError as exc:
            refused = [error for error in exc.details.get("writeErrors", []) if error.get("code") != 11000]
            if refused or exc.details.get("writeConcernErrors"):
                raise  # not only duplicates (this event published before): see translating_outages
            return int(exc.details.get("nInserted", 0))

    async def lease_delivery(self, owner: str, now: datetime, lease: timedelta) -> WebhookDelivery | None:
        doc = await self._db.webhook_deliveries.find_one_and_update(
            {**exactly(state=DeliveryState.PENDING), "due_ms": {"$lte": epoch_ms(now)}},
            {"$set": {"due_ms": epoch_ms(now + lease), "lease_owner": owner}, "$inc": {"attempts": 1}},
            sort=[("due_ms", ASCENDING)],
            return_document=ReturnDocument.AFTER,
        )
        return WebhookDelivery.from_doc(doc) if doc else None

    async def finish_delivery(
        self,
        delivery: WebhookDelivery,
        owner: str,
        state: DeliveryState,
        now: datetime,
        *,
        status: int | None = None,
        error: str | None = None,
        due: datetime | None = None,
    ) -> bool:
        """Record an attempt: ``SENT``, ``DEAD``, or ``PENDING`` again at ``due`` (a retry).
        ``False`` if the lease had passed to another worker."""
        fields: dict[str, Any] = {"state": str(state)}
        if status is not None:
            fields["last_status"] = status
        if error is not None:
            fields["last_error"] = error[:300]
        if state == DeliveryState.SENT:
            fields["sent_at"] = epoch_ms(now)
        if due is not None:
            fields["due_ms"] = epoch_ms(due)
        result = await self._db.webhook_deliveries.update_one(
            {"_id": delivery.id, "lease_owner": owner, "state": str(DeliveryState.PENDING)},
            {"$set": fields, "$unset": {"lease_owner": ""}},
        )
        return result.modified_count == 1

    async def postpone_delivery(self, delivery: WebhookDelivery, owner: str, due: datetime) -> None:
        """Put a delivery back without counting the attempt (its account is disabled)."""
        await self._db.webhook_deliveries.update_one(
            {"_id": delivery.id, "lease_owner": owner, "state": str(DeliveryState.PENDING)},
            {"$set": {"due_ms": epoch_ms(due)}, "$inc": {"attempts": -1}, "$unset": {"lease_owner": ""}},
        )

    async def list_deliveries(
        self, subscription_id: str, state: DeliveryState | None = None, limit: int = 50
    ) -> list[WebhookDelivery]:
        query = exactly(subscription_id=subscription_id, **({"state": state} if state is not None else {}))
        docs = await self._db.webhook_deliveries.find(query).sort("created_at", DESCENDING).limit(limit).to_list()
        return [WebhookDelivery.from_doc(doc) for doc in docs]

    async def count_deliveries(self, subscription_id: str, state: DeliveryState) -> int:
        """How many of the subscription's deliveries are in ``state``, through their index."""
        return await self._count("webhook_deliveries", exactly(subscription_id=subscription_id, state=state))

    async def get_delivery(self, delivery_id: str) -> WebhookDelivery | None:
        doc = await self._db.webhook_deliveries.find_one({"_id": delivery_id})
        return WebhookDelivery.from_doc(doc) if doc else None

    async def redeliver(self, delivery_id: str, now: datetime) -> WebhookDelivery | None:
        """Try a dead (or sent) delivery again from scratch; ``None`` if it is still pending."""
        doc = await self._db.webhook_deliveries.find_one_and_update(
            {"_id": delivery_id, "state": {"$ne": str(DeliveryState.PENDING)}},
            {"$set": {"state": str(DeliveryState.PENDING), "due_ms": epoch_ms(now), "attempts": 0}},
            return_document=ReturnDocument.AFTER,
        )
        return WebhookDelivery.from_doc(doc) if doc else None


def webhook_secret_field(subscription_id: Any) -> str:
    """The field path a subscription's secret is sealed for."""
    return f"webhook_subscriptions.{subscription_id}.secret"


def _deliveries_about(scope: ContactScope) -> dict[str, Any] | None:
    """A contact's deliveries (their threads' events), or old messages' (retention)."""
    parts = [
        {name: {"$in": sorted(set(values))}}
        for name, values in (("thread_id", scope.thread_ids), ("message_id", scope.message_ids))
        if values
    ]
    return (parts[0] if len(parts) == 1 else {"$or": parts}) if parts else None


# the bodies carry the thread and message as they were sent: found, exported and erased with them
register_holder(query_holder("webhook_deliveries", "webhook_deliveries", _deliveries_about))
declare_not_personal("webhook_subscriptions", "the businesses' webhook endpoints")
