"""Store operations for tenants: accounts, their channel settings (secrets sealed at rest), API
tokens and webhook subscriptions.

A mixin of ``Store``. Secret fields of an account's ``channels`` and webhook secrets go through the
store's ``Sealer`` on the way in and out, so the rest of the router reads plain settings and the
database holds only sealed values. Reading a sealed value without a key raises ``SealingError``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pymongo import ASCENDING, DESCENDING, IndexModel, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from conversations.models import Account
from conversations.personal_data import declare_not_personal
from conversations.sealing import Sealer, SealingError, is_sealed, is_secret_field
from conversations.tenant_models import ApiToken, WebhookSubscription

TENANT_INDEXES: dict[str, list[IndexModel]] = {
    "api_tokens": [
        IndexModel([("token_hash", ASCENDING)], unique=True),
        IndexModel([("account_id", ASCENDING), ("created_at", DESCENDING)]),
    ],
    "webhook_subscriptions": [IndexModel([("account_id", ASCENDING), ("created_at", ASCENDING)])],
}
_CHECK_ID = "sealing-key-check"


class TenantStore:
    """Accounts, API tokens and webhook subscriptions."""

    _db: AsyncDatabase[dict[str, Any]]
    _sealer: Sealer | None = None

    # --- sealing -------------------------------------------------------------------------

    def use_sealer(self, sealer: Sealer) -> None:
        """The key that seals and opens secrets from now on (set at start-up)."""
        self._sealer = sealer

    def _sealing(self) -> Sealer:
        if self._sealer is None:
            raise SealingError("this process has no secret key, so it cannot read or write sealed secrets")
        return self._sealer

    def _open(self, config: Mapping[str, Any]) -> dict[str, Any]:
        if not any(is_sealed(v) for v in config.values()):
            return dict(config)
        return self._sealing().unseal_fields(config)

    async def sealing_check(self) -> dict[str, Any] | None:
        """What the store says about the key its secrets are sealed with (``key_id``, ``sample``)."""
        return await self._db.secrets.find_one({"_id": _CHECK_ID})

    async def save_sealing_check(self, key_id: str, sample: str) -> dict[str, Any]:
        """Record the key in use, unless another process recorded one first; returns the record."""
        try:
            await self._db.secrets.insert_one({"_id": _CHECK_ID, "key_id": key_id, "sample": sample})
        except DuplicateKeyError:
            pass
        doc = await self._db.secrets.find_one({"_id": _CHECK_ID})
        assert doc is not None
        return doc

    async def sealed_secret(self, name: str, make: Callable[[], str]) -> tuple[str, bool]:
        """An install secret every router process on this store shares, kept sealed: ``make()``'s
        value if nobody stored one first. Returns ``(value, whether this call stored it)``."""
        sealer, created = self._sealing(), True
        try:
            await self._db.secrets.insert_one({"_id": name, "value": sealer.seal(make())})
        except DuplicateKeyError:
            created = False
        value = await self.read_sealed_secret(name)
        assert value is not None
        return value, created

    async def read_sealed_secret(self, name: str) -> str | None:
        """The install secret ``name``, opened; a value stored in clear is refused."""
        doc = await self._db.secrets.find_one({"_id": name})
        if doc is None:
            return None
        if not is_sealed(doc.get("value")):
            raise SealingError(f"the install secret {name} is stored unsealed: delete it and restart to make a new one")
        return self._sealing().unseal(str(doc["value"]))

    async def replace_sealed_secret(self, name: str, value: str) -> None:
        """Store a new value of the install secret ``name`` (sealed)."""
        await self._db.secrets.update_one({"_id": name}, {"$set": {"value": self._sealing().seal(value)}}, upsert=True)

    async def seal_plain_secrets(self) -> int:
        """Seal secrets stored in clear (before sealing existed); returns how many accounts changed."""
        sealer, changed = self._sealing(), 0
        async for doc in self._db.accounts.find({}, {"channels": 1}):
            channels = doc.get("channels") or {}
            updates = {
                f"channels.{name}.{key}": sealer.seal(value)
                for name, config in channels.items() if isinstance(config, dict)
                for key, value in config.items()
                if is_secret_field(key) and isinstance(value, str) and value and not is_sealed(value)
            }
            if updates:
                await self._db.accounts.update_one({"_id": doc["_id"]}, {"$set": updates})
                changed += 1
        return changed

    # --- accounts ------------------------------------------------------------------------

    async def get_account(self, account_id: str) -> Account | None:
        """The account with its channel settings opened (plain)."""
        doc = await self._db.accounts.find_one({"_id": account_id})
        if doc is None:
            return None
        account = Account.from_doc(doc)
        account.channels = {name: self._open(config) if isinstance(config, Mapping) else config
                            for name, config in (account.channels or {}).items()}
        return account

    async def create_account(self, account: Account) -> bool:
        """Store a new account; ``False`` if the id is taken."""
        try:
            await self._db.accounts.insert_one(account.to_doc())
            return True
        except DuplicateKeyError:
            return False

    async def auto_assigning_accounts(self, by_default: bool) -> list[str]:
        """The enabled accounts whose queue strategy is ``auto`` (``by_default``: also those that
        never chose one, as ``queue.strategy`` is ``auto``)."""
        chose_auto: dict[str, Any] = {"routing.strategy": "auto"}
        query: dict[str, Any] = {"$or": [chose_auto, {"routing.strategy": {"$exists": False}}]} if by_default else chose_auto
        docs = await self._db.accounts.find({**query, "disabled": {"$ne": True}}, {"_id": 1}).to_list()
        return [str(doc["_id"]) for doc in docs]

    async def update_account(self, account_id: str, **values: Any) -> Account | None:
        """Set plain fields (name, disabled, retention_days, routing); ``None`` if no such account."""
        doc = await self._db.accounts.find_one_and_update(
            {"_id": account_id}, {"$set": values}, projection={"channels": 0}, return_document=ReturnDocument.AFTER
        )
        return Account.from_doc(doc) if doc else None

    async def set_account_channel(self, account_id: str, channel: str, config: Mapping[str, Any]) -> bool:
        """Replace one channel's settings on an account (secrets sealed); ``False`` if there is no
        such account."""
        result = await self._db.accounts.update_one(
            {"_id": account_id}, {"$set": {f"channels.{channel}": self._sealing().seal_fields(config)}}
        )
        return result.matched_count == 1

    async def merge_account_channel(self, account_id: str, channel: str, values: Mapping[str, Any],
                                    remove: tuple[str, ...] = ()) -> bool:
        """Change some fields of one channel's settings (secrets sealed), leaving the others."""
        sealed = self._sealing().seal_fields(values)
        update: dict[str, Any] = {}
        if sealed:
            update["$set"] = {f"channels.{channel}.{k}": v for k, v in sealed.items()}
        if remove:
            update["$unset"] = {f"channels.{channel}.{k}": "" for k in remove}
        if not update:
            return await self._db.accounts.count_documents({"_id": account_id}) == 1
        result = await self._db.accounts.update_one({"_id": account_id}, update)
        return result.matched_count == 1

    async def remove_account_channel(self, account_id: str, channel: str) -> None:
        await self._db.accounts.update_one({"_id": account_id}, {"$unset": {f"channels.{channel}": ""}})

    async def end_account_sessions(self, account_id: str) -> None:
        """Log every agent of the account out (the account was disabled)."""
        await self._db.sessions.delete_many({"account_id": account_id})

    # --- API tokens ----------------------------------------------------------------------

    async def create_api_token(self, token: ApiToken) -> None:
        await self._db.api_tokens.insert_one(token.to_doc())

    async def api_token_by_hash(self, token_hash: str) -> ApiToken | None:
        doc = await self._db.api_tokens.find_one({"token_hash": token_hash})
        return ApiToken.from_doc(doc) if doc else None

    async def list_api_tokens(self, account_id: str) -> list[ApiToken]:
        docs = await self._db.api_tokens.find({"account_id": account_id}).sort("created_at", DESCENDING).to_list()
        return [ApiToken.from_doc(doc) for doc in docs]

    async def revoke_api_token(self, account_id: str, token_id: str) -> bool:
        result = await self._db.api_tokens.delete_one({"_id": token_id, "account_id": account_id})
        return result.deleted_count == 1

    async def touch_api_token(self, token_id: str, now_ms: int) -> None:
        await self._db.api_tokens.update_one({"_id": token_id}, {"$max": {"last_used_ms": now_ms}})

    # --- webhook subscriptions -----------------------------------------------------------

    async def create_webhook(self, subscription: WebhookSubscription) -> None:
        doc = subscription.to_doc()
        doc["secret"] = self._sealing().seal(subscription.secret)
        await self._db.webhook_subscriptions.insert_one(doc)

    def _subscription(self, doc: Mapping[str, Any]) -> WebhookSubscription:
        opened = dict(doc)
        opened["secret"] = self._sealing().unseal(str(doc["secret"])) if is_sealed(doc.get("secret")) else doc.get("secret", "")
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
            values["secret"] = self._sealing().seal(values["secret"])
        doc = await self._db.webhook_subscriptions.find_one_and_update(
            {"_id": subscription_id, "account_id": account_id}, {"$set": values}, return_document=ReturnDocument.AFTER
        )
        return self._subscription(doc) if doc else None

    async def delete_webhook(self, account_id: str, subscription_id: str) -> bool:
        result = await self._db.webhook_subscriptions.delete_one({"_id": subscription_id, "account_id": account_id})
        if result.deleted_count:
            await self._db.webhook_deliveries.delete_many({"subscription_id": subscription_id, "state": "pending"})
        return result.deleted_count == 1


declare_not_personal("api_tokens", "the businesses' API credentials (hashed)")
declare_not_personal("webhook_subscriptions", "the businesses' webhook endpoints")
