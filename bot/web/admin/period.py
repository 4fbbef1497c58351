"""The period an admin page covers (reports, the timesheet, the audit log): ``from`` and ``until``
(YYYY-MM-DD, UTC days, both included) from the query, and one default for all three pages, so
switching between them shows the same days."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from aiohttp import web

DEFAULT_PERIOD_DAYS = 30  # today and the 29 days before it
MAX_DAYS = 366


def read_period(request: web.Request) -> tuple[date, date]:
    """The query's period, checked (400 when wrong); the last ``DEFAULT_PERIOD_DAYS`` by default."""
    today = datetime.now(UTC).date()
    try:
        since = date.fromisoformat(
            request.query.get("from") or (today - timedelta(days=DEFAULT_PERIOD_DAYS - 1)).isoformat()
        )
        until = date.fromisoformat(request.query.get("until") or today.isoformat())
    except ValueError:
        raise web.HTTPBadRequest(text="dates are YYYY-MM-DD") from None
    if until < since:
        raise web.HTTPBadRequest(text="the period ends before it starts")
    if (until - since).days >= MAX_DAYS:
        raise web.HTTPBadRequest(text=f"a period is at most {MAX_DAYS} days")
    return since, until
