"""Store operations for two-factor sign-in: agents' authenticator secrets (sealed like channel
secrets), their recovery codes (hashes only), and logins waiting for their second step.

A mixin of ``Store``. Accepting a code and spending a recovery code are single conditional updates,
so a code replayed at once — on this process or another — finds it already used. A pending
secret belongs to the one half-done login or session it was made for (``owner``): it is confirmed
only by that one, so nobody else's page can show a secret an agent then turns on.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from conversations.console_models import LoginChallenge, SecondFactor
from conversations.personal_data import declare_not_personal
from conversations.sealing import SealingError

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
    seal_value: Callable[[str, str, str], str]  # (account, field, plain) -> sealed: TenantStore's, in Store
    open_value: Callable[[str, str, Any], str]  # (account, field, stored) -> plain: TenantStore's, in Store

    async def second_factor(self, agent_id: str) -> SecondFactor | None:
        """The agent's second factor with its secret opened, or ``None``. A secret that does not
        open (another key, an altered record) leaves ``secret`` empty and says why in ``problem``:
        no code matches it, and an admin resets it."""
        doc = await self._db.second_factors.find_one({"_id": agent_id})
        if doc is None:
            return None
        try:
            opened = {**doc, "secret": self.open_value(str(doc["account_id"]), _secret_field(agent_id), doc.get("secret"))}
        except SealingError as exc:
            opened = {**doc, "secret": "", "problem": str(exc)}
        return SecondFactor.from_doc(opened)

    async def agents_with_second_factor(self, account_id: str) -> set[str]:
        docs = await self._db.second_factors.find({"account_id": account_id, "state": "on"}, {"_id": 1}).to_list()
        return {str(doc["_id"]) for doc in docs}

    async def begin_second_factor(self, factor: SecondFactor) -> bool:
        """Store a new, unconfirmed secret for ``factor.owner`` (replacing an unconfirmed one,
        whoever's); ``False`` if the agent already has a confirmed second factor."""
        doc = factor.to_doc()
        doc["secret"] = self.seal_value(factor.account_id, _secret_field(factor.id), factor.secret)
        try:
            result = await self._db.second_factors.replace_one({"_id": factor.id, "state": "pending"}, doc, upsert=True)
        except DuplicateKeyError:
            return False
        return result.matched_count == 1 or result.upserted_id is not None

    async def confirm_second_factor(self, agent_id: str, owner: str, step: int, recovery_hashes: list[str]) -> bool:
        """Turn the second factor that is pending for ``owner`` on, with the first accepted code's
        time step; ``False`` if it is on already or was replaced meanwhile."""
        result = await self._db.second_factors.update_one(
            {"_id": agent_id, "state": "pending", "owner": owner},
            {"$set": {"state": "on", "last_step": step, "recovery": recovery_hashes}, "$unset": {"owner": ""}})
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

    async def end_sessions_without_second_factor(self, account_id: str) -> None:
        """End every session of the account that did not pass a second factor (``$in`` rather than
        ``$ne: true``: the embedded store's deletes skip documents without the field for ``$ne``)."""
        await self._db.sessions.delete_many({"account_id": account_id, "second_factor": {"$in": [False, None]}})

    async def passed_second_factor(self, session_id: str) -> None:
        """Record that ``session_id``'s agent gave a right code (confirming an authenticator)."""
        await self._db.sessions.update_one({"_id": session_id}, {"$set": {"second_factor": True}})

    async def accounts_requiring_second_factor(self, account_ids: list[str]) -> set[str]:
        """Which of ``account_ids`` require two-factor sign-in."""
        docs = await self._db.accounts.find({"_id": {"$in": account_ids}, "require_two_factor": True}, {"_id": 1}).to_list()
        return {str(doc["_id"]) for doc in docs}

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
