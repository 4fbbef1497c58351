"""Admin pages: the reports (charts and CSV) and the audit log (browse, filter, CSV)."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import date

from aiohttp import web

from bot import audit
from bot.keys import SETTINGS, STORE
from bot.services.agents import account_inboxes
from bot.services.csvcells import inert_cell
from bot.services.reports import Report, UnknownInbox, build_report, period_bounds, report_csv
from bot.web.admin import charts
from bot.web.admin.period import read_period
from bot.web.codes import first_inbox_name, word
from bot.web.i18n import N_, translate
from bot.web.pages import current_agent, page, signed_in
from conversations.agent_models import Role
from conversations.audit import AuditQuery
from conversations.models import epoch_ms, utcnow

AUDIT_PAGE = 50
AUDIT_CSV_ROWS = 100_000
_ACTION = re.compile(r"^[a-z_.]{0,40}$")
_ACTOR = re.compile(r"^[\w.-]{0,64}$")


async def _report(request: web.Request) -> Report:
    """The report of the query's period and inbox (``inbox``: a key, or every inbox when left
    out); 400 for an inbox that is not one of the account's."""
    since, until = read_period(request)
    settings = request.app[SETTINGS]
    try:
        return await build_report(
            request.app[STORE],
            current_agent(request).account_id,
            since,
            until,
            first_response_minutes=settings.queue.first_response_minutes,
            now=utcnow(),
            inbox=request.query.get("inbox") or None,
        )
    except UnknownInbox:
        raise web.HTTPBadRequest(text="inbox: one of this account's inboxes (first:<channel> or inb_…)") from None


async def _inbox_choices(request: web.Request, lang: str) -> list[tuple[str, str]]:
    """The inboxes a report can be of, as ``(key, shown name)``."""
    inboxes = await account_inboxes(request.app[STORE], current_agent(request).account_id)
    return [(key, name or first_inbox_name(lang, channel)) for key, channel, name in inboxes]


# the report's timings by name, marked for extraction and translated where they are drawn
TIMINGS = {"queue_wait": N_("Queue wait"), "first_response": N_("First response"), "resolution": N_("Resolution")}


def report_charts(report: Report, lang: str) -> dict[str, object]:
    """The report's charts as inline SVG markup."""

    def _(message: str) -> str:
        return translate(lang, message)

    timing = [(_(TIMINGS.get(t.name, t.name)), t.median, t.p90) for t in report.timings]
    return {
        "channels": charts.bar_chart(
            _("Conversations by channel"), [(word(lang, "channel", c), n) for c, n in report.by_channel]
        ),
        "days": charts.column_chart(_("Conversations per day"), [(d.strftime("%m-%d"), n) for d, n in report.by_day]),
        "containment": charts.share_bar(
            _("Bot containment"), [(_("bot only"), report.contained), (_("handed to humans"), report.escalated)]
        ),
        "reasons": charts.bar_chart(_("Escalation reasons"), [(word(lang, "reason", r), n) for r, n in report.reasons]),
        "timings": charts.paired_bars(_("Response times"), timing, (_("median"), "p90")),
        "agents": charts.bar_chart(
            _("Conversations per agent"),
            [(a.login, a.conversations) for a in report.agents],
            tone=0,
            width=440,
            label_width=110,
        ),
        "shifts": charts.bar_chart(
            _("Shift hours"),
            [(a.login, round(a.shift_s / 3600, 1)) for a in report.agents],
            fmt=lambda h: f"{h:g} h",
            tone=2,
            width=440,
            label_width=110,
        ),
        "csat_days": charts.column_chart(
            _("Satisfied customers per day"),
            [(row.key[5:], round(100 * (row.csat or 0))) for row in report.satisfaction.by_day],
            fmt=lambda v: f"{v:g} %",
        ),
    }


@signed_in(Role.SUPERVISOR)
async def reports_page(request: web.Request) -> web.Response:
    agent = current_agent(request)
    report = await _report(request)
    return page(
        request,
        "reports.html",
        report=report,
        charts=report_charts(report, agent.lang),
        since=report.since.isoformat(),
        until=report.until.isoformat(),
        dur=_duration,
        inboxes=await _inbox_choices(request, agent.lang),
        first_inbox=lambda channel: first_inbox_name(agent.lang, channel),
    )


def _duration(seconds: float | None) -> str:
    return "—" if seconds is None else charts.duration(seconds)


@signed_in(Role.SUPERVISOR)
async def reports_csv(request: web.Request) -> web.Response:
    agent = current_agent(request)
    report = await _report(request)
    await audit.record(
        request.app[STORE],
        agent.account_id,
        agent,
        "report.export",
        agent.account_id,
        since=report.since.isoformat(),
        until=report.until.isoformat(),
        inbox=report.inbox,
    )
    name = f"report-{report.since.isoformat()}-{report.until.isoformat()}.csv"
    return web.Response(
        text=report_csv(report, lambda channel: first_inbox_name(agent.lang, channel)),
        content_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


def _audit_query(request: web.Request) -> tuple[AuditQuery, date, date]:
    """The audit filter of the query string (the default period), checked."""
    actor, action = request.query.get("actor", ""), request.query.get("action", "")
    if not _ACTOR.match(actor) or not _ACTION.match(action):
        raise web.HTTPBadRequest(text="actor: an agent id or login; action: a name such as thread.resolve")
    since, until = read_period(request)
    start, end = period_bounds(since, until)
    query = AuditQuery(
        current_agent(request).account_id, actor=actor, action=action, since_ms=epoch_ms(start), until_ms=epoch_ms(end)
    )
    return query, since, until


@signed_in(Role.ADMIN)
async def audit_page(request: web.Request) -> web.Response:
    agent, store = current_agent(request), request.app[STORE]
    query, since, until = _audit_query(request)
    raw_page = request.query.get("page", "1")
    if not raw_page.isdigit() or not 1 <= int(raw_page) <= 10_000:
        raise web.HTTPBadRequest(text="page must be a number from 1")
    entries, more = await store.audit.audit_page(query, int(raw_page), AUDIT_PAGE)
    return page(
        request,
        "audit.html",
        entries=entries,
        more=more,
        page_no=int(raw_page),
        query=query,
        since=since.isoformat(),
        until=until.isoformat(),
        agents=await store.agents.list_agents(agent.account_id),
        actions=await store.audit.audit_actions(agent.account_id),
        details=_details,
    )


def _details(details: dict[str, object]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(details.items()))


@signed_in(Role.ADMIN)
async def audit_csv(request: web.Request) -> web.StreamResponse:
    agent, store = current_agent(request), request.app[STORE]
    query, since, until = _audit_query(request)
    await audit.record(
        store,
        agent.account_id,
        agent,
        "audit.export",
        agent.account_id,
        since=since.isoformat(),
        until=until.isoformat(),
        actor=query.actor or None,
        action=query.action or None,
    )
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/csv; charset=utf-8",
            "Content-Disposition": f'attachment; filename="audit-{since.isoformat()}-{until.isoformat()}.csv"',
        }
    )
    await response.prepare(request)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["at", "actor", "actor_login", "action", "target", "details"])
    async for entry in store.audit.audit_entries(query, AUDIT_CSV_ROWS):
        writer.writerow(
            [
                inert_cell(value)
                for value in (
                    entry.at.isoformat(),
                    entry.actor,
                    entry.actor_name,
                    entry.action,
                    entry.target,
                    json.dumps(entry.details, ensure_ascii=False, sort_keys=True),
                )
            ]
        )
        if buffer.tell() > 64_000:
            await response.write(buffer.getvalue().encode())
            buffer.seek(0)
            buffer.truncate()
    await response.write(buffer.getvalue().encode())
    await response.write_eof()
    return response


def routes() -> list[web.RouteDef]:
    return [
        web.get("/admin/reports", reports_page),
        web.get("/admin/reports.csv", reports_csv),
        web.get("/admin/audit", audit_page),
        web.get("/admin/audit.csv", audit_csv),
    ]
