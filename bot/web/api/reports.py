"""The REST API for an account's reports: the figures of the admin Reports page and its CSV, as
JSON rows, of the account's conversations or of one of its inboxes'. Definitions in
bot/services/reports.py and docs/console.md ("Reports")."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from bot.keys import SETTINGS, STORE
from bot.services.reports import UnknownInbox, build_report, report_rows
from bot.web.admin.period import read_period
from bot.web.api.accounts import account_of
from bot.web.api.kit import ApiRoutes, Call, Param, api_error, reply
from bot.web.codes import first_inbox_name
from conversations.models import utcnow

API = ApiRoutes()
_DAY = {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"}
FROM = Param("from", _DAY, "the period's first UTC day, YYYY-MM-DD (default: 29 days before `until`)")
UNTIL = Param("until", _DAY, "the period's last UTC day, YYYY-MM-DD (default: today)")
INBOX = Param(
    "inbox",
    {"type": "string", "minLength": 1, "maxLength": 64},
    "one inbox's conversations only: `first:<channel>` (the account's first inbox of a channel) or an"
    " extra inbox's id (`inb_…`); default: every inbox",
)
_ROW = {
    "type": "object",
    "required": ["section", "item", "measure", "value"],
    "properties": {
        "section": {"type": "string"},
        "item": {"type": "string"},
        "measure": {"type": "string"},
        "value": {"type": ["integer", "string"], "description": "a count, or a number as text ('' for none)"},
    },
}
_REPORT: dict[str, Any] = {
    "type": "object",
    "required": ["account_id", "from", "until", "inbox", "rows"],
    "properties": {
        "account_id": {"type": "string"},
        "from": {"type": "string", "format": "date"},
        "until": {"type": "string", "format": "date"},
        "inbox": {"type": ["string", "null"], "description": "the inbox reported on; null: every inbox"},
        "rows": {"type": "array", "items": _ROW, "description": "the CSV export's rows (durations in seconds)"},
    },
}


@API(
    "GET",
    "/api/accounts/{account_id}/reports",
    "The account's report of a period (conversations opened in it, shifts started in it), or of one inbox:"
    " the rows of the Reports page's CSV export",
    tag="reports",
    query=(FROM, UNTIL, INBOX),
    response=_REPORT,
    errors=(422,),
)
async def get_report(request: web.Request, call: Call) -> web.Response:
    account = await account_of(request, call)
    try:
        since, until = read_period(request)
    except web.HTTPBadRequest as wrong:
        raise api_error(400, "bad_request", wrong.text or "from and until: YYYY-MM-DD") from None
    try:
        report = await build_report(
            request.app[STORE],
            account.id,
            since,
            until,
            first_response_minutes=request.app[SETTINGS].queue.first_response_minutes,
            now=utcnow(),
            inbox=call.query.get("inbox"),
        )
    except UnknownInbox as unknown:
        raise api_error(422, "unknown_inbox", f"no inbox {unknown} in account {account.id}") from None
    named = report_rows(report, lambda channel: first_inbox_name("en", channel))
    rows = [{"section": s, "item": i, "measure": m, "value": v} for s, i, m, v in named]
    period = {"from": since.isoformat(), "until": until.isoformat()}
    return reply({"account_id": account.id, **period, "inbox": report.inbox, "rows": rows})
