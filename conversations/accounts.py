"""Store operations for tenants: accounts, their channel settings (secrets sealed at rest), API
tokens and webhook subscriptions.

A mixin of ``Store``. Secret fields of an account's ``channels`` and webhook secrets go through the
store's ``Sealer`` on the way in and out, so the rest of the router reads plain settings and the
database holds only sealed values, each bound to its account and field (``seal_value`` and
``open_value`` do the same for any other part's secret). Reading a sealed value without a key
raises ``SealingError``; so does a plain value where a sealed one belongs, except in the start-up
upgrade (``seal_plain_secrets``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pymongo import ASCENDING, DESCENDING, IndexModel, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from conversations.models import Account
from conversations.personal_data import declare_not_personal
from conversations.sealing import INSTALL, Sealer, SealingError, channel_field, is_secret_field
from conversations.tenant_models import ApiToken, WebhookSubscription

TENANT_INDEXES: dict[str, list[IndexModel]] = {
    "api_tokens": [
        IndexModel([("token_hash", ASCENDING)], unique=True),
        IndexModel([("account_id", ASCENDING), ("created_at", DESCENDING)]),
    ],
    "webhook_subscriptions": [IndexModel([("account_id", ASCENDING), ("created_at", ASCENDING)])],
}
_CHECK_ID = "sealing-key-check"
_NO_KEY = "this process has no secret key, so it cannot read or write sealed secrets"


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
            raise SealingError(_NO_KEY)
        return self._sealer

    def seal_value(self, account_id: str, field: str, plain: str) -> str:
        """``plain`` sealed for ``field`` of ``account_id`` (``sealing.INSTALL`` for the install's
        own secrets). ``field`` names where the value is kept: ``<collection>.<_id>.<field>``
        (``webhook_subscriptions.<id>.secret``), or a path inside the account's own document
        (``channels.telegram.token``). Moved anywhere else, the value does not open."""
        return self._sealing().seal(plain, account_id, field)

    def open_value(self, account_id: str, field: str, stored: Any) -> str:
        """What ``seal_value(account_id, field, …)`` sealed; ``SealingError`` (a one-line reason)
        for anything else, a plain value included."""
        return self._sealing().unseal(stored, account_id, field)

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
        created = True
        try:
            await self._db.secrets.insert_one(
                {"_id": name, "value": self.seal_value(INSTALL, shared_secret_field(name), make())})
        except DuplicateKeyError:
            created = False
        value = await self.read_sealed_secret(name)
        assert value is not None
        return value, created

    async def read_sealed_secret(self, name: str) -> str | None:
        """The install secret ``name``, opened; a value stored in clear is refused (``SealingError``)."""
        doc = await self._db.secrets.find_one({"_id": name})
        if doc is None:
            return None
        return self.open_value(INSTALL, shared_secret_field(name), doc.get("value"))

    async def replace_sealed_secret(self, name: str, value: str) -> None:
        """Store a new value of the install secret ``name`` (sealed)."""
        sealed = self.seal_value(INSTALL, shared_secret_field(name), value)
        await self._db.secrets.update_one({"_id": name}, {"$set": {"value": sealed}}, upsert=True)

    async def replace_sealing_sample(self, old: str, new: str) -> None:
        """The check's sample resealed (``old`` as read, so a concurrent upgrade is not undone)."""
        await self._db.secrets.update_one({"_id": _CHECK_ID, "sample": old}, {"$set": {"sample": new}})

    async def seal_plain_secrets(self) -> tuple[int, list[str]]:
        """The start-up upgrade: secrets stored in clear (before sealing existed) or in the first
        sealed format (bound to the key only) are sealed for their account and field. Returns how
        many records changed and why values could not be upgraded (they stay, refused when used).
        After it, a plain value where a sealed one belongs is an error."""
        upgrade, changed = _Upgrade(self._sealing()), 0
        async for doc in self._db.accounts.find({}, {"channels": 1}):
            updates = {
                f"channels.{name}.{key}": sealed
                for name, config in (doc.get("channels") or {}).items() if isinstance(config, dict)
                for key, value in config.items() if is_secret_field(key)
                if (sealed := upgrade(value, str(doc["_id"]), channel_field(name, key)))
            }
            changed += await self._upgrade(self._db.accounts, doc, updates)
        async for doc in self._db.webhook_subscriptions.find({}, {"account_id": 1, "secret": 1}):
            sealed = upgrade(doc.get("secret"), str(doc.get("account_id")), _webhook_field(doc["_id"]))
            changed += await self._upgrade(self._db.webhook_subscriptions, doc, {"secret": sealed} if sealed else {})
        async for doc in self._db.secrets.find({"_id": {"$ne": _CHECK_ID}}):
            sealed = upgrade(doc.get("value"), INSTALL, shared_secret_field(str(doc["_id"])))
            changed += await self._upgrade(self._db.secrets, doc, {"value": sealed} if sealed else {})
        return changed, upgrade.problems

    @staticmethod
    async def _upgrade(collection: Any, doc: Mapping[str, Any], updates: Mapping[str, str]) -> int:
        """Write upgraded values where the stored ones are still those read (another router may
        have upgraded them meanwhile: its values stand)."""
        if not updates:
            return 0
        unchanged = {path: _at(doc, path) for path in updates}
        result = await collection.update_one({"_id": doc["_id"], **unchanged}, {"$set": dict(updates)})
        return int(result.modified_count)

    def _open(self, account_id: str, channel: str, config: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
        """A channel's settings opened, and its secrets that did not open (name → why)."""
        secret = [k for k, v in config.items() if is_secret_field(k) and v not in ("", None)]
        if not secret:
            return dict(config), {}
        if self._sealer is None:  # a CLI command that only needs the account's other fields
            return {k: v for k, v in config.items() if k not in secret}, dict.fromkeys(secret, _NO_KEY)
        return self._sealer.unseal_fields(config, account_id, channel)

    # --- accounts ------------------------------------------------------------------------

    async def get_account(self, account_id: str) -> Account | None:
        """The account with its channel settings opened (plain); a secret that does not open is
        left out and said why in ``sealing_problems``, so one bad value costs one channel, never the
        account (its logins, its pages, its other channels)."""
        doc = await self._db.accounts.find_one({"_id": account_id})
        if doc is None:
            return None
        account = Account.from_doc(doc)
        channels, problems = {}, {}
        for name, config in (account.channels or {}).items():
            if not isinstance(config, Mapping):
                channels[name] = config
                continue
            channels[name], unopened = self._open(account_id, name, config)
            problems.update({f"{name}.{key}": why for key, why in unopened.items()})
        account.channels, account.sealing_problems = channels, problems or None
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
            {"_id": account_id},
            {"$set": {f"channels.{channel}": self._sealing().seal_fields(config, account_id, channel)}},
        )
        return result.matched_count == 1

    async def merge_account_channel(self, account_id: str, channel: str, values: Mapping[str, Any],
                                    remove: tuple[str, ...] = ()) -> bool:
        """Change some fields of one channel's settings (secrets sealed), leaving the others."""
        sealed = self._sealing().seal_fields(values, account_id, channel)
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
        doc["secret"] = self.seal_value(subscription.account_id, _webhook_field(subscription.id), subscription.secret)
        await self._db.webhook_subscriptions.insert_one(doc)

    def _subscription(self, doc: Mapping[str, Any]) -> WebhookSubscription:
        """The subscription with its secret opened; one that does not open is left empty and
        said why (``secret_problem``): nothing is signed with it."""
        opened = dict(doc)
        try:
            opened["secret"] = self.open_value(str(doc.get("account_id")), _webhook_field(doc["_id"]), doc.get("secret"))
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
            values["secret"] = self.seal_value(account_id, _webhook_field(subscription_id), values["secret"])
        doc = await self._db.webhook_subscriptions.find_one_and_update(
            {"_id": subscription_id, "account_id": account_id}, {"$set": values}, return_document=ReturnDocument.AFTER
        )
        return self._subscription(doc) if doc else None

    async def delete_webhook(self, account_id: str, subscription_id: str) -> bool:
        result = await self._db.webhook_subscriptions.delete_one({"_id": subscription_id, "account_id": account_id})
        if result.deleted_count:
            await self._db.webhook_deliveries.delete_many({"subscription_id": subscription_id, "state": "pending"})
        return result.deleted_count == 1


class _Upgrade:
    """``Sealer.upgrade`` that notes a value it cannot open (an altered one) and goes on."""

    def __init__(self, sealer: Sealer) -> None:
        self._sealer = sealer
        self.problems: list[str] = []

    def __call__(self, value: Any, account_id: str, field: str) -> str | None:
        try:
            return self._sealer.upgrade(value, account_id, field)
        except SealingError as exc:
            self.problems.append(str(exc))
            return None


def _webhook_field(subscription_id: Any) -> str:
    return f"webhook_subscriptions.{subscription_id}.secret"


def shared_secret_field(name: str) -> str:
    """The field path a shared secret (``Store.shared_secret``) is sealed for."""
    return f"secrets.{name}.value"


def _at(doc: Mapping[str, Any], path: str) -> Any:
    for part in path.split("."):
        doc = doc.get(part) if isinstance(doc, Mapping) else None  # type: ignore[assignment]
    return doc


declare_not_personal("api_tokens", "the businesses' API credentials (hashed)")
declare_not_personal("webhook_subscriptions", "the businesses' webhook endpoints")
