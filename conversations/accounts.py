"""Accounts (tenants): a business with its channel settings, business hours, routing and retention,
and its REST API tokens. Channel secrets are sealed at rest: they go through the client's
``Sealer`` on the way in and out (``client.py``), so the rest of the router reads plain settings
and the database holds only sealed values, each bound to its account and field. Reading a sealed
value without a key raises ``SealingError``; so does a plain value where a sealed one belongs. The
one exception is the upgrade of a store written by an earlier release
(``sealed_secrets.seal_plain_secrets``), which runs once per store: the sealing check records that
its secrets are in the current format, and from then on a plain value stays refused at every start.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING, IndexModel, ReturnDocument
from pymongo.errors import DuplicateKeyError

from conversations.client import NO_KEY, IndexPlan, Repository
from conversations.models import epoch_ms
from conversations.personal_data import declare_not_personal
from conversations.sealing import is_secret_field
from conversations.tenant_models import Account, ApiToken

INDEXES: IndexPlan = {
    "api_tokens": [
        IndexModel([("token_hash", ASCENDING)], unique=True),
        IndexModel([("account_id", ASCENDING), ("created_at", DESCENDING)]),
    ]
}


class AccountsRepository(Repository):
    """Accounts, their channel settings (secrets sealed) and their API tokens."""

    async def ensure_account(self, account_id: str, name: str, now: datetime) -> Account:
        await self._db.accounts.update_one(
            {"_id": account_id},
            {"$setOnInsert": {"name": name, "created_at": epoch_ms(now), "channels": {}}},
            upsert=True,
        )
        doc = await self._db.accounts.find_one({"_id": account_id})
        assert doc is not None
        return Account.from_doc(doc)

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

    async def accounts_with_channel_value(self, channel: str, field: str, value: str) -> list[str]:
        """The accounts whose own ``channel`` settings have ``field`` = ``value`` (a field that is no
        secret, as a WhatsApp ``phone_number_id``: sealed ones never compare equal)."""
        found = self._db.accounts.find({f"channels.{channel}.{field}": value}, {"_id": 1})
        return [str(doc["_id"]) async for doc in found]

    async def list_accounts(self) -> list[Account]:
        return [Account.from_doc(doc) async for doc in self._db.accounts.find({}).sort("_id", ASCENDING)]

    async def auto_assigning_accounts(self, by_default: bool) -> list[str]:
        """The enabled accounts whose queue strategy is ``auto`` (``by_default``: also those that
        never chose one, as ``queue.strategy`` is ``auto``), or one of whose inboxes' is."""
        inboxes = await self._db.inboxes.find({"routing.strategy": "auto"}, {"account_id": 1}).to_list()
        chose_auto: list[dict[str, Any]] = [
            {"routing.strategy": "auto"},
            *({"_id": {"$eq": account_id}} for account_id in sorted({str(doc["account_id"]) for doc in inboxes})),
        ]
        if by_default:
            chose_auto.append({"routing.strategy": {"$exists": False}})
        query = {"$and": [{"$or": chose_auto}, {"disabled": {"$ne": True}}]}
        docs = await self._db.accounts.find(query, {"_id": 1}).to_list()
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
            {"$set": {f"channels.{channel}": self._client.require_sealer().seal_fields(config, account_id, channel)}},
        )
        return result.matched_count == 1

    async def merge_account_channel(
        self, account_id: str, channel: str, values: Mapping[str, Any], remove: tuple[str, ...] = ()
    ) -> bool:
        """Change some fields of one channel's settings (secrets sealed), leaving the others."""
        sealed = self._client.require_sealer().seal_fields(values, account_id, channel)
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

    async def set_account_fields(self, account_id: str, **values: Any) -> None:
        """Per-account console settings (strategy, business hours, location recording)."""
        await self._db.accounts.update_one({"_id": account_id}, {"$set": values})

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

    def _open(self, account_id: str, channel: str, config: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
        """A channel's settings opened, and its secrets that did not open (name → why)."""
        secret = [k for k, v in config.items() if is_secret_field(k) and v not in ("", None)]
        if not secret:
            return dict(config), {}
        if self._client.sealer is None:  # a CLI command that only needs the account's other fields
            return {k: v for k, v in config.items() if k not in secret}, dict.fromkeys(secret, NO_KEY)
        return self._client.sealer.unseal_fields(config, account_id, channel)


declare_not_personal("api_tokens", "the businesses' API credentials (hashed)")
