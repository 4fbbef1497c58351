"""Store operations for two-factor sign-in: agents' authenticator secrets (sealed like channel
secrets), their recovery codes (hashes only), and logins waiting for their second step.

A mixin of ``Store``. Accepting a code and spending a recovery code are single conditional updates,
so a code replayed at once — on this process or another — finds it already used.
"""

from __future__ import annotations

from typing import Any

from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from conversations.console_models import LoginChallenge, SecondFactor
from conversations.personal_data import declare_not_personal

SECOND_FACTOR_INDEXES: dict[str, list[IndexModel]] = {
    "second_factors": [IndexModel([("account_id", ASCENDING)])],
    "login_challenges": [IndexModel([("expires_ms", ASCENDING)])],
}


def _secret_field(agent_id: str) -> str:
    """What a second factor's sealed secret is bound to, beside its account."""
    return f"second_factors.{agent_id}.secret"


class SecondFactorStore:
    """Authenticator secrets, recovery codes and half-done logins."""

    _db: AsyncDatabase[dict[str, Any]]

    def seal_value(self, account_id: str, field: str, plain: str) -> str:
        raise NotImplementedError  # TenantStore's, in Store

    def open_value(self, account_id: str, field: str, stored: Any) -> str:
        raise NotImplementedError  # TenantStore's, in Store

    async def second_factor(self, agent_id: str) -> SecondFactor | None:
        """The agent's second factor with its secret opened, or ``None``."""
        doc = await self._db.second_factors.find_one({"_id": agent_id})
        if doc is None:
            return None
        secret = self.open_value(str(doc["account_id"]), _secret_field(agent_id), doc["secret"])
        return SecondFactor.from_doc({**doc, "secret": secret})

    async def agents_with_second_factor(self, account_id: str) -> set[str]:
        docs = await self._db.second_factors.find({"account_id": account_id, "state": "on"}, {"_id": 1}).to_list()
        return {str(doc["_id"]) for doc in docs}

    async def begin_second_factor(self, factor: SecondFactor) -> bool:
        """Store a new, unconfirmed secret (replacing an unconfirmed one); ``False`` if the agent
        already has a confirmed second factor."""
        doc = factor.to_doc()
        doc["secret"] = self.seal_value(factor.account_id, _secret_field(factor.id), factor.secret)
        try:
            result = await self._db.second_factors.replace_one({"_id": factor.id, "state": "pending"}, doc, upsert=True)
        except DuplicateKeyError:
            return False
        return result.matched_count == 1 or result.upserted_id is not None

    async def confirm_second_factor(self, agent_id: str, step: int, recovery_hashes: list[str]) -> bool:
        """Turn a pending second factor on with the first accepted code's time step."""
        result = await self._db.second_factors.update_one(
            {"_id": agent_id, "state": "pending"},
            {"$set": {"state": "on", "last_step": step, "recovery": recovery_hashes}})
        return result.modified_count == 1

    async def accept_totp_step(self, agent_id: str, step: int) -> bool:
        """Record a code of time step ``step`` as used; ``False`` if it (or a later one) was used."""
        result = await self._db.second_factors.update_one(
            {"_id": agent_id, "state": "on", "last_step": {"$lt": step}}, {"$set": {"last_step": step}})
        return result.modified_count == 1

    async def spend_recovery_code(self, agent_id: str, code_hash: str) -> bool:
        """Use one recovery code up; ``False`` if it is not (or no longer) one of the agent's."""
        result = await self._db.second_factors.update_one(
            {"_id": agent_id, "state": "on", "recovery": code_hash}, {"$pull": {"recovery": code_hash}})
        return result.modified_count == 1

    async def remove_second_factor(self, agent_id: str) -> bool:
        result = await self._db.second_factors.delete_one({"_id": agent_id})
        return result.deleted_count == 1

    async def end_sessions_without_second_factor(self, account_id: str, keep: set[str]) -> None:
        """Log out every agent of the account but those in ``keep`` (who use a second factor)."""
        await self._db.sessions.delete_many({"account_id": account_id, "agent_id": {"$nin": sorted(keep)}})

    # --- logins waiting for their second step ------------------------------------------

    async def create_login_challenge(self, challenge: LoginChallenge) -> None:
        await self._db.login_challenges.insert_one(challenge.to_doc())

    async def login_challenge(self, challenge_id: str, now_ms: int) -> LoginChallenge | None:
        doc = await self._db.login_challenges.find_one({"_id": challenge_id, "expires_ms": {"$gt": now_ms}})
        return LoginChallenge.from_doc(doc) if doc else None

    async def end_login_challenge(self, challenge_id: str, now_ms: int) -> None:
        """Drop a challenge (done or abandoned), and every expired one."""
        await self._db.login_challenges.delete_one({"_id": challenge_id})
        await self._db.login_challenges.delete_many({"expires_ms": {"$lt": now_ms}})


declare_not_personal("second_factors", "agents' authenticator secrets (sealed) and recovery codes (hashed)")
declare_not_personal("login_challenges", "agents' logins waiting for their second step, for minutes")
