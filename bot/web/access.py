"""Who may call a route, written on its handler: console routes by ``signed_in`` (a session of
at least a role), API routes by their operation (a token with a scope, or the superadmin). The
authorisation tests read these marks from the application's router, so a new route is tested as
soon as it exists, and a route without a mark fails them unless it is public on purpose."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from conversations.agent_models import Role

F = TypeVar("F", bound=Callable[..., Any])
_ATTRIBUTE = "omnirouter_access"


@dataclass(frozen=True)
class Access:
    kind: str  # "session" (console) | "token" (REST API)
    role: Role = Role.AGENT  # session: the least role
    scope: str = "read"  # token: read | write
    superadmin: bool = False  # token: the install-wide token only
    agents: bool = False  # token: an agent's token may call it too (the conversation routes)


def mark(handler: F, access: Access) -> F:
    setattr(handler, _ATTRIBUTE, access)
    return handler


def access_of(handler: Callable[..., Any]) -> Access | None:
    found: Access | None = getattr(handler, _ATTRIBUTE, None)
    return found
