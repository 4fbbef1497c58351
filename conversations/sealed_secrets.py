"""The install's own secrets, sealed at rest: secrets every router process on one store shares
(the web chat's visitor-token key, the install token's hash...), the record of which key seals
them and in which format (the sealing check), and the once-per-store upgrade that seals what
earlier releases stored in clear or in the first sealed format.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pymongo.errors import DuplicateKeyError

from conversations.client import Repository
from conversations.sealing import FORMAT, INSTALL, Sealer, SealingError, channel_field, is_secret_field
from conversations.webhooks import webhook_secret_field

_CHECK_ID = "sealing-key-check"


class SealedSecretsRepository(Repository):
    """Shared install secrets, the sealing check and the sealing upgrade."""

    async def sealing_check(self) -> dict[str, Any] | None:
        """What the store says about the key its secrets are sealed with (``key_id``, ``sample``)
        and about their format (``format``: ``sealing.FORMAT`` once upgraded)."""
        return await self._db.secrets.find_one({"_id": _CHECK_ID})

    async def record_secrets_format(self) -> None:
        """Note that every secret of the store is in the current format: no start-up upgrades
        them again, so a plain value planted later is refused, never sealed."""
        await self._db.secrets.update_one({"_id": _CHECK_ID}, {"$set": {"format": FORMAT}})

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
        """An install secret every router process on this store shares, kept sealed (field
        ``secrets.<name>.value``): ``make()``'s value if nobody stored one first, whichever process
        asks first. Returns ``(value, whether this call stored it)``."""
        created = True
        try:
            await self._db.secrets.insert_one(
                {"_id": name, "value": self._client.seal_value(INSTALL, shared_secret_field(name), make())}
            )
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
        return self._client.open_value(INSTALL, shared_secret_field(name), doc.get("value"))

    async def replace_sealed_secret(self, name: str, value: str) -> None:
        """Store a new value of the install secret ``name`` (sealed)."""
        sealed = self._client.seal_value(INSTALL, shared_secret_field(name), value)
        await self._db.secrets.update_one({"_id": name}, {"$set": {"value": sealed}}, upsert=True)

    async def replace_sealing_sample(self, old: str, new: str) -> None:
        """The check's sample resealed (``old`` as read, so a concurrent upgrade is not undone)."""
        await self._db.secrets.update_one({"_id": _CHECK_ID, "sample": old}, {"$set": {"sample": new}})

    async def seal_plain_secrets(self) -> tuple[int, list[str]]:
        """The upgrade of a store an earlier release wrote (once per store, at the first start of
        this release: see ``record_secrets_format``): secrets stored in clear (before sealing
        existed) or in the first sealed format (bound to the key only) are sealed for their account
        and field. Returns how many records changed and why values could not be upgraded (they
        stay, refused when used)."""
        upgrade, changed = _Upgrade(self._client.require_sealer()), 0
        async for doc in self._db.accounts.find({}, {"channels": 1}):
            updates = {
                f"channels.{name}.{key}": sealed
                for name, config in (doc.get("channels") or {}).items()
                if isinstance(config, dict)
                for key, value in config.items()
                if is_secret_field(key)
                if (sealed := upgrade(value, str(doc["_id"]), channel_field(name, key)))
            }
            changed += await self._upgrade(self._db.accounts, doc, updates)
        async for doc in self._db.webhook_subscriptions.find({}, {"account_id": 1, "secret": 1}):
            sealed = upgrade(doc.get("secret"), str(doc.get("account_id")), webhook_secret_field(doc["_id"]))
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


def shared_secret_field(name: str) -> str:
    """The field path an install secret (``SealedSecretsRepository.sealed_secret``) is sealed for."""
    return f"secrets.{name}.value"


def _at(doc: Mapping[str, Any], path: str) -> Any:
    for part in path.split("."):
        doc = doc.get(part) if isinstance(doc, Mapping) else None  # type: ignore[assignment]
    return doc
