"""What a team's name may be, wherever a team is named: an agent's teams (admin page, API, CLI),
an inbox's routing team (inboxes page, API) and a transfer to a team's queue (console, API). A
thread is queued to a team by its name and an agent sees the queues of the teams they are in, so
one rule for all keeps the names comparable. Names stored before a rule applied are read as they are."""

from __future__ import annotations

import re

# for JSON Schemas too, which search with it: Python's $ also matches before a final line feed, and
# the look-ahead refuses that one
TEAM_PATTERN = r"^[\w-]{1,32}$(?!\n)"
TEAM_RULE = "a team is one name of letters, digits, - or _ (at most 32 characters)"
_TEAM = re.compile(TEAM_PATTERN)
# the same rule for a form's ``pattern`` attribute (a browser's JavaScript regular expression with
# the v flag, whole value): Python's \w in a str pattern is a Unicode letter or number, or _
TEAM_FORM_PATTERN = r"[\p{L}\p{N}_\-]{1,32}"
TEAM_MAX_LENGTH = 32


def is_team(name: str) -> bool:
    """Whether ``name`` can be a team's."""
    return _TEAM.search(name) is not None


def teams_of(text: str) -> list[str] | None:
    """The teams of a comma-separated list (``"sales, vip"``); ``None`` if one is not a team's name."""
    teams = [t.strip() for t in text.split(",") if t.strip()]
    return teams if all(is_team(t) for t in teams) else None
