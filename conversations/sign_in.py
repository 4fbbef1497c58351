"""Signing agents in: console sessions, the throttling of failed logins, two-factor sign-in
(authenticator secrets sealed like channel secrets, recovery codes as hashes only) and logins
waiting for their second step.

Accepting a code and spending a recovery code are single conditional updates, so a code replayed at
once — on this process or another — finds it already used. A pending secret belongs to the one
half-done login or session it was made for (``owner``): it is confirmed only by that one, so nobody
else's page can show a secret an agent then turns on. A failed login is counted by a
revision-guarded update, so concurrent attempts cannot both slip under the limit.
"""

from __future__ import annotations

from typing import Any

from pymongo import ASCENDING, IndexModel
from pymongo.errors import DuplicateKeyError

from conversations.agent_models import LoginChallenge, SecondFactor, Session
from conversations.client import IndexPlan, Repository
from conversations.personal_data import declare_not_personal
from conversations.sealing import SealingError

INDEXES: IndexPlan = {
    "sessions": [IndexModel([("agent_id", ASCENDING)])],
    "login_failures": [IndexModel([("expires_ms", ASCENDING)])],
    "second_factors": [IndexModel([("account_id", ASCENDING)])],
    "login_challenges": [IndexModel([("expires_ms", ASCENDING)])],
}


def _secret_field(agent_id: str) -> str:
    """What a second factor's sealed secret is bound to, beside its account."""
    return f"second_factors.{agent_id}.secret"


class SignInRepository(Repository):
    """Sessions, failed-login counts, second factors and half-done logins."""

    # --- sessions ------------------------------------------------------------------------

    async def create_session(self, session: Session) -> None:
        await self._db.sessions.insert_one(session.to_doc())

    async def get_session(self, session_id: str) -> Session | None:
        doc = await self._db.sessions.find_one({"_id": session_id})
        return Session.from_doc(doc) if doc else None

    async def sessions_by_ids(self, session_ids: list[str]) -> list[Session]:
        docs = await self._db.sessions.find({"_id": {"$in": session_ids}}).to_list()
        return [Session.from_doc(doc) for doc in docs]

    async def agent_sessions(self, agent_id: str) -> list[Session]:
        """The agent's console logins (every browser they are signed in on)."""
        docs = await self._db.sessions.find({"agent_id": agent_id}).to_list()
        return [Session.from_doc(doc) for doc in docs]

    async def touch_session(self, session_id: str, seen_ms: int) -> None:
        await self._db.sessions.update_one({"_id": session_id}, {"$set": {"seen_ms": seen_ms}})

    async def delete_session(self, session_id: str) -> None:
        await self._db.sessions.delete_one({"_id": session_id})

    async def delete_agent_sessions(self, agent_id: str) -> None:
        await self._db.sessions.delete_many({"agent_id": agent_id})

    async def end_account_sessions(self, account_id: str) -> None:
        """Log every agent of the account out (the account was disabled)."""
        await self._db.sessions.delete_many({"account_id": account_id})

    # --- login throttling ----------------------------------------------------------------

    async def login_throttle(self, key: str) -> dict[str, Any] | None:
        """The failed-login count of ``key`` (``failures``, ``wait_until_ms``, ``expires_ms``, ``rev``)."""
        return await self._db.login_failures.find_one({"_id": key})

    async def claim_login_attempt(
        self, key: str, rev: int | None, failures: int, wait_until_ms: int, expires_ms: int
    ) -> bool:
        """Count an attempt, if ``key`` is still at revision ``rev`` (``None``: not stored yet);
        ``False`` when another attempt changed it first (read it again and decide anew)."""
        values = {"failures": failures, "wait_until_ms": wait_until_ms, "expires_ms": expires_ms}
        if rev is None:
            try:
                await self._db.login_failures.insert_one({"_id": key, "rev": 1, **values})
                return True
            except DuplicateKeyError:
                return False
        result = await self._db.login_failures.update_one(
            {"_id": key, "rev": rev}, {"$set": {**values, "rev": rev + 1}}
        )
        return result.modified_count == 1

    async def take_back_login_attempt(self, key: str) -> None:
        await self._db.login_failures.update_one(
            {"_id": key, "failures": {"$gt": 0}}, {"$inc": {"failures": -1, "rev": 1}}
        )

    async def forget_login_failures(self, key: str, now_ms: int) -> None:
        """Clear ``key``'s count (a login that succeeded) unless it is a revoked device cookie's,
        and the counts that expired. (``$exists``, not ``$ne: true``: the embedded store's deletes
        skip documents without the field for ``$ne``.)"""
        await self._db.login_failures.delete_one({"_id": key, "revoked": {"$exists": False}})
        await self._db.login_failures.delete_many({"expires_ms": {"$lt": now_ms}})

    async def revoke_login_device(self, key: str, until_ms: int) -> None:
        """Mark a device cookie's count revoked, kept until the cookie expires."""
        await self._db.login_failures.update_one(
            {"_id": key}, {"$set": {"revoked": True, "expires_ms": until_ms}, "$inc": {"rev": 1}}, upsert=True
        )

    # --- second factors ----------------------------------------------------------------

    async def second_factor(self, agent_id: str) -> SecondFactor | None:
        """The agent's second factor with its secret opened, or ``None``. A secret that does not
        open (another key, an altered record) leaves ``secret`` empty and says why in ``problem``:
        no code matches it, and an admin resets it."""
        doc = await self._db.second_factors.find_one({"_id": agent_id})
        if doc is None:
            return None
        try:
            opened = {
                **doc,
                "secret": self._client.open_value(str(doc["account_id"]), _secret_field(agent_id), doc.get("secret")),
            }
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
        doc["secret"] = self._client.seal_value(factor.account_id, _secret_field(factor.id), factor.secret)
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
            {"$set": {"state": "on", "last_step": step, "recovery": recovery_hashes}, "$unset": {"owner": ""}},
        )
        return result.modified_count == 1

    async def accept_totp_step(self, agent_id: str, step: int) -> bool:
        """Record a code of time step ``step`` as used; ``False`` if it (or a later one) was used."""
        result = await self._db.second_factors.update_one(
            {"_id": agent_id, "state": "on", "last_step": {"$lt": step}}, {"$set": {"last_step": step}}
        )
        return result.modified_count == 1

    async def spend_recovery_code(self, agent_id: str, code_hash: str) -> bool:
        """Use one recovery code up; ``False`` if it is not (or no longer) one of the agent's."""
        result = await self._db.second_factors.update_one(
            {"_id": agent_id, "state": "on", "recovery": code_hash}, {"$pull": {"recovery": code_hash}}
        )
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
        docs = await self._db.accounts.find(
            {"_id": {"$in": account_ids}, "require_two_factor": True}, {"_id": 1}
        ).to_list()
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
