"""Admin pages: agents (add, change role, teams, capacity, deactivate), the timesheet (read and
CSV export), the account's routing (strategy, business hours, out-of-hours reply, location
recording) and canned responses. Agents are refused with 403."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from aiohttp import web

from bot import audit
from bot.business_hours import BusinessHours
from bot.keys import QUEUE, STORE
from bot.router.routing import STRATEGIES
from bot.services.agents import account_inboxes, add_agent, change_agent, chosen_inboxes
from bot.services.csvcells import inert_cell
from bot.services.satisfaction_report import satisfaction_report
from bot.services.teams import teams_of
from bot.web.admin.period import read_period
from bot.web.admin.privacy import retention_context
from bot.web.i18n import translate
from bot.web.pages import current_agent, page, plain, redirect, signed_in
from conversations.agent_models import Agent, Role, Shift
from conversations.models import utcnow

LOGIN_PATTERN = r"^[a-z0-9][a-z0-9_.-]{1,31}$"
_LOGIN = re.compile(LOGIN_PATTERN)
_SHORTCUT = re.compile(r"^[a-z0-9_-]{1,32}$")
CSAT_PERIOD = timedelta(days=30)  # the agents table's satisfaction column


async def _period(request: web.Request) -> tuple[date, date, list[Shift]]:
    since, until = read_period(request)
    start = datetime.combine(since, time.min, UTC)
    end = datetime.combine(until + timedelta(days=1), time.min, UTC)
    shifts = await request.app[STORE].agents.list_shifts(
        current_agent(request).account_id, start, end, request.query.get("agent") or None
    )
    return since, until, shifts


@signed_in(Role.ADMIN)
async def admin_page(request: web.Request) -> web.Response:
    return await _show(request, request.query.get("message", "")[:300])


async def _show(request: web.Request, message: str, created: dict[str, str] | None = None) -> web.Response:
    """The admin page; ``created``: a new agent's login and password, shown in this page only."""
    agent = current_agent(request)
    store, queue = request.app[STORE], request.app[QUEUE]
    since, until, shifts = await _period(request)
    routing = await queue.routing(agent.account_id)
    now = utcnow()
    asked = await store.satisfaction.asked_between(agent.account_id, now - CSAT_PERIOD, now + timedelta(seconds=1))
    return page(
        request,
        "admin.html",
        agents=await store.agents.list_agents(agent.account_id),
        inboxes=await account_inboxes(store, agent.account_id),
        shifts=shifts,
        roles=_roles(agent),
        since=since.isoformat(),
        until=until.isoformat(),
        routing=routing,
        canned=await store.agents.list_canned(agent.account_id),
        message=message,
        created=created,
        two_factor=await store.sign_in.agents_with_second_factor(agent.account_id),
        csat={row.key: row for row in satisfaction_report(asked, {}).by_agent},  # each agent's, last 30 days
        **await retention_context(request),
    )


@signed_in(Role.ADMIN)
async def timesheet_csv(request: web.Request) -> web.Response:
    since, until, shifts = await _period(request)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(
        [
            "agent",
            "shift",
            "started_at",
            "ended_at",
            "duration_s",
            "start_lat",
            "start_lon",
            "start_accuracy",
            "end_lat",
            "end_lon",
            "end_accuracy",
        ]
    )
    for s in shifts:
        start, end = s.start_location or {}, s.end_location or {}
        writer.writerow(
            [
                inert_cell(v)
                for v in [
                    s.agent_login,
                    s.id,
                    s.started_at.isoformat(),
                    s.ended_at.isoformat() if s.ended_at else "",
                    s.duration_s if s.duration_s is not None else "",
                    start.get("lat"),
                    start.get("lon"),
                    start.get("accuracy"),
                    end.get("lat"),
                    end.get("lon"),
                    end.get("accuracy"),
                ]
            ]
        )
    admin = current_agent(request)
    await audit.record(
        request.app[STORE],
        admin.account_id,
        admin,
        "timesheet.export",
        admin.account_id,
        since=since.isoformat(),
        until=until.isoformat(),
    )
    name = f"timesheet-{since.isoformat()}-{until.isoformat()}.csv"
    return web.Response(
        text=out.getvalue(), content_type="text/csv", headers={"Content-Disposition": f'attachment; filename="{name}"'}
    )


def _roles(actor: Agent) -> list[str]:
    """The roles ``actor`` may give: a superadmin makes superadmins too."""
    return [r.value for r in Role if r.rank <= Role(actor.role).rank]


def _back(message: str) -> web.Response:
    return redirect("/admin?message=" + re.sub(r"[^\w .,:;'()@-]", "", message).replace(" ", "+")[:300])


@signed_in(Role.ADMIN)
async def create_agent(request: web.Request) -> web.Response:
    form, admin = await request.post(), current_agent(request)
    login = str(form.get("login", "")).strip().lower()
    teams = teams_of(str(form.get("teams", "")))
    role = str(form.get("role", "agent"))
    capacity = str(form.get("capacity", "5"))
    if (
        not _LOGIN.match(login)
        or teams is None
        or role not in _roles(admin)
        or not capacity.isdigit()
        or not 1 <= int(capacity) <= 100
    ):
        return plain(
            400,
            "login: 2-32 of a-z 0-9 _ . -; teams: comma-separated words; role agent|supervisor|admin; capacity 1-100",
        )
    agent, password = await add_agent(
        request.app[STORE],
        admin.account_id,
        login,
        name=str(form.get("name", "")).strip()[:80] or login,
        role=Role(role),
        teams=teams,
        capacity=int(capacity),
    )
    if agent is None:
        return _back(translate(admin.lang, "That login is taken."))
    await audit.record(request.app[STORE], admin.account_id, admin, "agent.create", agent.id, login=login, role=role)
    # the password in this page's body, never in a URL (browser history, proxy logs)
    return await _show(request, "", created={"login": login, "password": password})


@signed_in(Role.ADMIN)
async def update_agent(request: web.Request) -> web.Response:
    form, admin, store = await request.post(), current_agent(request), request.app[STORE]
    target = await store.agents.get_agent(request.match_info["agent_id"])
    if target is None or target.account_id != admin.account_id:
        return plain(404, "no such agent")
    if target.role not in _roles(admin):
        return plain(403, "only a superadmin changes a superadmin")
    teams = teams_of(str(form.get("teams", "")))
    capacity = str(form.get("capacity", target.capacity))
    role = str(form.get("role", target.role))
    if teams is None or not capacity.isdigit() or not 1 <= int(capacity) <= 100 or role not in _roles(admin):
        return plain(400, "teams: comma-separated words; capacity 1-100; role agent|supervisor|admin")
    active = form.get("active") == "on" or target.id == admin.id  # an admin cannot lock themselves out
    changes = {"teams": teams, "role": role, "active": active, "capacity": int(capacity)}
    if form.get("inboxes_shown"):  # the form's inbox boxes: "every inbox", or the ones ticked
        keys = None if form.get("every_inbox") == "on" else [str(key) for key in form.getall("inbox", [])]
        try:
            changes["inboxes"] = await chosen_inboxes(store, admin.account_id, keys)
        except ValueError as exc:
            return plain(400, str(exc))
    kept: Any = changes.get("inboxes", target.inboxes)
    await change_agent(
        store,
        target,
        admin,
        changes,
        inboxes="every" if kept is None else ",".join(kept),
        login=target.login,
        role=role,
        teams=",".join(teams),
        capacity=int(capacity),
        active=active,
    )
    return _back(translate(admin.lang, "Saved."))


@signed_in(Role.ADMIN)
async def reset_two_factor(request: web.Request) -> web.Response:
    """Take an agent's authenticator away (a lost phone): they are logged out, and set a new one
    up at their next login where the account requires it."""
    admin, store = current_agent(request), request.app[STORE]
    target = await store.agents.get_agent(request.match_info["agent_id"])
    if target is None or target.account_id != admin.account_id:
        return plain(404, "no such agent")
    if target.role not in _roles(admin):
        return plain(403, "only a superadmin changes a superadmin")
    if await store.sign_in.remove_second_factor(target.id):
        await store.sign_in.delete_agent_sessions(target.id)
        await audit.record(store, admin.account_id, admin, "agent.second_factor_reset", target.id, login=target.login)
    return _back(
        translate(admin.lang, "Two-factor sign-in of {login} was reset; they are logged out.", login=target.login)
    )


def _one_line(text: str) -> str:
    """``text`` as one line: line breaks and runs of spaces made one space, control characters dropped."""
    return "".join(c for c in " ".join(text.split()) if c.isprintable())


@signed_in(Role.ADMIN)
async def update_routing(request: web.Request) -> web.Response:
    form, admin = await request.post(), current_agent(request)
    strategy = str(form.get("strategy", ""))
    hours, zone = str(form.get("business_hours", "")).strip(), str(form.get("timezone", "UTC")).strip()
    if strategy not in STRATEGIES:
        return plain(400, "strategy must be manual, next or auto")
    try:
        BusinessHours.parse(hours, zone)
    except (ValueError, KeyError) as exc:
        return plain(400, f"business hours: {exc}")
    await request.app[QUEUE].set_routing(
        admin.account_id,
        strategy=strategy,
        business_hours=hours,
        timezone=zone,
        out_of_hours_reply=str(form.get("out_of_hours_reply", "")).strip()[:1000],
        greeting=_one_line(str(form.get("greeting", "")))[:300],
        record_location=form.get("record_location") == "on",
    )
    await request.app[QUEUE].auto_assign(admin.account_id)
    await audit.record(
        request.app[STORE],
        admin.account_id,
        admin,
        "settings.routing",
        admin.account_id,
        strategy=strategy,
        business_hours=hours,
        timezone=zone,
    )
    return _back(translate(admin.lang, "Saved."))


@signed_in(Role.ADMIN)
async def update_canned(request: web.Request) -> web.Response:
    form, admin, store = await request.post(), current_agent(request), request.app[STORE]
    shortcut = str(form.get("shortcut", "")).strip().lstrip("/").lower()
    if not _SHORTCUT.match(shortcut):
        return plain(400, "shortcut: 1-32 of a-z 0-9 _ -")
    if form.get("delete"):
        await store.agents.delete_canned(admin.account_id, shortcut)
    else:
        text = str(form.get("text", "")).strip()
        if not text or len(text) > 4096:
            return plain(400, "the text must be 1 to 4096 characters")
        await store.agents.put_canned(admin.account_id, shortcut, text)
    await audit.record(
        store, admin.account_id, admin, "settings.canned", shortcut, deleted=True if form.get("delete") else None
    )
    return _back(translate(admin.lang, "Saved."))


def routes() -> list[web.RouteDef]:
    return [
        web.get("/admin", admin_page),
        web.get("/admin/timesheet.csv", timesheet_csv),
        web.post("/admin/agents", create_agent),
        web.post("/admin/agents/{agent_id}", update_agent),
        web.post("/admin/agents/{agent_id}/two-factor/reset", reset_two_factor),
        web.post("/admin/routing", update_routing),
        web.post("/admin/canned", update_canned),
    ]
