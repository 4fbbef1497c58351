"""Stored records of the people who answer customers: agents (roles, capacity, presence), their
shifts (the timesheet), canned responses, login sessions, second factors and half-done logins."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar

from conversations.models import Document, load_enum


class Role(StrEnum):
    AGENT = "agent"
    # sees and reassigns every conversation of the account and reads its reports; changes no settings
    SUPERVISOR = "supervisor"
    ADMIN = "admin"  # runs one account: agents, routing, channels, API tokens, webhooks
    SUPERADMIN = "superadmin"  # an admin who also manages the accounts of the install

    @property
    def rank(self) -> int:
        """Each role may do what the roles below it may."""
        return _ROLE_RANK[self]


_ROLE_RANK = {Role.AGENT: 0, Role.SUPERVISOR: 1, Role.ADMIN: 2, Role.SUPERADMIN: 3}


class Presence(StrEnum):
    ONLINE = "online"
    AWAY = "away"
    OFFLINE = "offline"


# what the console can tell an agent about (each can be turned off): a conversation assigned to them,
# a customer writing in one of theirs, a new conversation queued for their teams; and how besides the
# count in the tab's title: a sound, a desktop notification
ALERTS = ("assigned", "customer_message", "queued", "sound", "desktop")


@dataclass(slots=True)
class Agent(Document):
    """A human who answers customers in the console."""

    LOADERS: ClassVar[dict[str, Callable[[Any], Any]]] = {"role": load_enum(Role), "presence": load_enum(Presence)}

    id: str
    account_id: str
    login: str
    name: str
    role: Role
    created_at: datetime
    password_hash: str | None = None
    teams: list[str] = field(default_factory=list)
    capacity: int = 5
    presence: Presence = Presence.OFFLINE
    # open conversations held, and free slots (capacity - load): reserved atomically before an
    # assignment, so no agent is ever given more than their capacity
    load: int = 0
    free: int = 5
    last_assigned_ms: int = 0  # round robin among equally loaded agents
    lang: str = "en"
    active: bool = True
    alerts_off: list[str] = field(default_factory=list)  # of ALERTS: what the console does not tell them
    # the keys of the inboxes whose conversations they see (conversations/membership.py); None:
    # every inbox of the account (agents stored before memberships existed, and new ones by default)
    inboxes: list[str] | None = None

    @property
    def is_admin(self) -> bool:
        """Admins and superadmins run the account (its settings: the admin pages)."""
        return Role(self.role).rank >= Role.ADMIN.rank

    @property
    def oversees(self) -> bool:
        """Supervisors, admins and superadmins work any conversation of the account (open, reassign,
        resolve), not only those assigned to them or queued for their teams."""
        return Role(self.role).rank >= Role.SUPERVISOR.rank


@dataclass(slots=True)
class Shift(Document):
    """One shift of one agent: started and ended by the console's shift button.

    ``start_location`` / ``end_location`` (``{"lat", "lon", "accuracy"}``) are stored only when
    the account enables it and the browser granted it, and only at those two presses.
    """

    id: str
    account_id: str
    agent_id: str
    agent_login: str
    started_at: datetime
    ended_at: datetime | None = None
    duration_s: int | None = None
    start_location: dict[str, float] | None = None
    end_location: dict[str, float] | None = None
    open_key: str | None = None  # "<agent id>" while the shift runs: one open shift per agent


@dataclass(slots=True)
class CannedResponse(Document):
    """A reply agents insert by typing ``/shortcut``."""

    id: str
    account_id: str
    shortcut: str
    text: str


@dataclass(slots=True)
class Session(Document):
    """A console login. ``id`` is the SHA-256 of the cookie's token, so the store never holds a
    usable session id. ``second_factor``: the login passed a second factor (a code at the login,
    or a first code confirming an authenticator in this session); a session without it ends as
    soon as its account requires two-factor sign-in."""

    id: str
    account_id: str
    agent_id: str
    csrf: str
    created_ms: int
    seen_ms: int
    second_factor: bool = False


@dataclass(slots=True)
class SecondFactor(Document):
    """An agent's authenticator app (TOTP, RFC 6238). ``id`` is the agent's id. ``secret`` is
    plain here and sealed in the store; ``recovery`` holds the SHA-256 of each unused recovery
    code; ``last_step`` is the last time step a code was accepted for (a code is good once).
    ``owner``: while pending, the half-done login (``challenge:<id>``) or the session
    (``session:<id>``) it was made for and is shown to, no other. ``problem``: why a stored secret
    does not open (then ``secret`` is empty and no code matches); never stored."""

    id: str
    account_id: str
    secret: str
    state: str = "pending"  # "pending" until a first code confirms it, then "on"
    recovery: list[str] = field(default_factory=list)
    last_step: int = 0
    created_ms: int = 0
    owner: str = ""
    problem: str | None = None

    @property
    def on(self) -> bool:
        return self.state == "on"


@dataclass(slots=True)
class LoginChallenge(Document):
    """A login half done: the password was right, the second factor is still owed (``verify``), or
    the account requires one the agent has yet to set up (``setup``). Not a session: it opens no
    page but the second step's own. ``id`` is the SHA-256 of its cookie's token."""

    id: str
    account_id: str
    agent_id: str
    purpose: str  # "verify" | "setup"
    csrf: str
    expires_ms: int
