"""What an inbox handles otherwise than its account (``Inbox.routing``, read by
``bot/router/routing.py``): whether the bot answers, the NLU model version that answers it, the
team its conversations are queued to and how they reach its agents (the strategy), its business
hours and time zone, and its out-of-hours reply. A setting left out (or ``null``) is the account's."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfoNotFoundError

from bot.business_hours import BusinessHours
from bot.router.routing import STRATEGIES
from bot.services.teams import TEAM_RULE, is_team
from conversations.repositories import Repositories

_TEXT = r"^[^\x00-\x08\x0b-\x1f]*$"  # no control characters but line breaks
INBOX_ROUTING: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "description": "what the inbox handles otherwise than its account; null or left out: the account's",
    "properties": {
        "bot": {"type": ["boolean", "null"], "description": "false: its conversations go straight to the agents"},
        "model": {
            "type": ["string", "null"],
            "maxLength": 100,
            "pattern": r"^[A-Za-z0-9_.:-]*$",
            "description": "one of the account's trained model versions (the Training page's) instead of its active one",
        },
        "team": {"type": ["string", "null"], "maxLength": 64, "pattern": _TEXT, "description": TEAM_RULE},
        "strategy": {
            "type": ["string", "null"],
            "enum": [*STRATEGIES, None],
            "description": "how its queued conversations reach agents: manual (agents take them), next (agents"
            " ask for the next one) or auto (each goes to the least-loaded online agent who sees the inbox)",
        },
        "business_hours": {"type": ["string", "null"], "maxLength": 400, "pattern": _TEXT},
        "timezone": {"type": ["string", "null"], "maxLength": 64, "pattern": r"^[A-Za-z0-9_+/-]*$"},
        "out_of_hours_reply": {"type": ["string", "null"], "maxLength": 1000, "pattern": _TEXT},
    },
}


@dataclass(frozen=True)
class RoutingProblem:
    """Why values cannot be an inbox's routing: the setting (``team``, ``timezone``, …) and what is
    wrong with it, in one line (``str``: both, as the API says it)."""

    field: str
    detail: str

    def __str__(self) -> str:
        return f"routing.{self.field}: {self.detail}"


def routing_problem(
    values: Mapping[str, Any], timezone: str, stored: Mapping[str, Any] | None = None
) -> RoutingProblem | None:
    """Why ``values`` cannot be an inbox's routing (a team that is not one name, hours that do not
    read, an unknown time zone); ``None`` when they can. ``timezone``: the account's, for hours
    alone; ``stored``: the inbox's routing now, whose team is kept as it is even if an earlier
    release took it under a looser rule."""
    team = values.get("team")
    if team and team != (stored or {}).get("team") and not is_team(str(team)):
        return RoutingProblem("team", TEAM_RULE)
    hours, zone = values.get("business_hours"), values.get("timezone")
    if not hours and not zone:
        return None
    try:
        BusinessHours.parse(hours or "", zone or timezone)
    except ZoneInfoNotFoundError:
        return RoutingProblem("timezone", f"{zone!r} is not a time zone like Europe/Riga")
    except (ValueError, KeyError) as exc:
        return RoutingProblem("business_hours", str(exc))
    return None


async def model_problem(store: Repositories, account_id: str, version: str | None) -> str | None:
    """Why ``version`` cannot answer an inbox of the account (not one of its trained versions, or
    retired), in one line; ``None`` when it can (or is left to the account's active model)."""
    if not version:
        return None
    if await store.nlu.usable_nlu_version(account_id, version):
        return None
    model = await store.nlu.get_nlu_model(version)
    if model is not None and model.get("account_id") == account_id:
        return f"routing.model: the version {version} was retired (its training data was erased); choose another"
    return f"routing.model: {version!r} is not a trained model version of this account (see the Training page)"


async def model_versions(store: Repositories, account_id: str, pinned: Iterable[str] = ()) -> list[dict[str, Any]]:
    """The account's versions an inbox may be pinned to (not retired), newest first, each with
    its ``version``, ``created_at`` (epoch ms) and whether it is the ``active`` one; ``pinned``:
    versions inboxes are pinned to, listed too while usable, however old."""
    active = await store.nlu.active_nlu_version(account_id)
    docs = [doc for doc in await store.nlu.nlu_models(account_id) if not doc.get("retired_at")]
    listed = {str(doc["_id"]) for doc in docs}
    for version in sorted(set(pinned) - listed):
        if await store.nlu.usable_nlu_version(account_id, version):
            docs.append(await store.nlu.get_nlu_model(version) or {"_id": version})
    return [{"version": str(d["_id"]), "created_at": d.get("created_at"), "active": d["_id"] == active} for d in docs]


def routing_changes(values: Mapping[str, Any]) -> dict[str, Any]:
    """The store fields that set ``values`` over an inbox's routing (others stay as they are)."""
    return {f"routing.{key}": value for key, value in values.items()}
