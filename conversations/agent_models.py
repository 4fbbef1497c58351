"""Stored records of the agent console: shifts (the timesheet), the thread timeline (private
notes and what happened to a thread), canned responses and login sessions."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from conversations.models import Document


class TimelineKind(StrEnum):
    NOTE = "note"  # a private note: agents see it, the customer never does
    QUEUED = "queued"
    ASSIGNED = "assigned"
    TRANSFERRED = "transferred"
    RESOLVED = "resolved"
    REOPENED = "reopened"
    LABELS = "labels"


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
class TimelineEntry(Document):
    """Something that happened to a thread besides messages: notes, assignments, transfers."""

    id: str
    account_id: str
    thread_id: str
    contact_id: str
    kind: str
    at: datetime
    actor: str = ""  # agent id, or "system"
    actor_name: str = ""
    text: str = ""
    details: dict[str, Any] = field(default_factory=dict)


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
    usable session id."""

    id: str
    account_id: str
    agent_id: str
    csrf: str
    created_ms: int
    seen_ms: int


@dataclass(slots=True)
class SecondFactor(Document):
    """An agent's authenticator app (TOTP, RFC 6238). ``id`` is the agent's id. ``secret`` is
    plain here and sealed in the store; ``recovery`` holds the SHA-256 of each unused recovery
    code; ``last_step`` is the last time step a code was accepted for (a code is good once)."""

    id: str
    account_id: str
    secret: str
    state: str = "pending"  # "pending" until a first code confirms it, then "on"
    recovery: list[str] = field(default_factory=list)
    last_step: int = 0
    created_ms: int = 0

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
