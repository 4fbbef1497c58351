"""The inboxes page's *Routing* form of an extra inbox (``/admin/inboxes/{inbox_id}/routing``):
whether its bot answers, the NLU model version that answers it, the team its conversations are
queued to and how they reach agents (the strategy), its business hours, time zone and out-of-hours
reply. A field left empty is the account's (``bot/services/inbox_routing.py``)."""

from __future__ import annotations

from aiohttp import web

from bot import audit
from bot.keys import QUEUE, STORE
from bot.router.routing import STRATEGIES
from bot.services.inbox_routing import model_problem, routing_changes, routing_problem
from bot.web.admin.inboxes import own_inbox, show
from bot.web.i18n import N_, translate
from bot.web.pages import current_agent, plain, redirect, signed_in
from conversations.agent_models import Role

_TEAM_RULE = N_("A team is one name of 1 to 32 letters, digits, - or _.")  # the rule of bot/services/teams.py
_TEXTS = {"business_hours": 400, "timezone": 64, "out_of_hours_reply": 1000}  # the longest each may be


@signed_in(Role.ADMIN)
async def save_routing(request: web.Request) -> web.Response:
    admin, form, store = current_agent(request), await request.post(), request.app[STORE]
    inbox = await own_inbox(request, admin)
    if inbox is None:
        return plain(404, "no such inbox in this account")
    bot, strategy = str(form.get("bot", "")), str(form.get("strategy", ""))
    if bot not in ("", "on", "off"):
        return plain(400, "bot must be empty, on or off")
    if strategy not in ("", *STRATEGIES):
        return plain(400, "strategy must be empty, manual, next or auto")
    team = str(form.get("team", "")).strip()
    routing: dict[str, object] = {k: str(form.get(k, "")).strip()[:most] or None for k, most in _TEXTS.items()}
    model = str(form.get("model", "")).strip()[:100]
    routing.update(
        bot=None if not bot else bot == "on", team=team or None, model=model or None, strategy=strategy or None
    )
    where = f"routing-{inbox.id}"
    zone = (await request.app[QUEUE].routing(admin.account_id)).hours.zone.key
    if problem := routing_problem(routing, zone, inbox.routing):
        text = translate(admin.lang, _TEAM_RULE) if problem.field == "team" else str(problem)
        return await show(request, 400, problem={"where": where, "text": text})
    if model != (inbox.routing or {}).get("model", "") and await model_problem(store, admin.account_id, model):
        text = translate(admin.lang, "That model version is not one of this account's that can answer: choose another.")
        return await show(request, 400, problem={"where": where, "text": text})
    changed = await store.inboxes.update_inbox(admin.account_id, inbox.id, {}, None, **routing_changes(routing))
    if not changed:
        return plain(404, "no such inbox in this account")
    request.app[QUEUE].inbox_routing_changed(admin.account_id, inbox.id)
    keys = ",".join(f"routing.{k}" for k in sorted(routing))
    await audit.record(store, admin.account_id, admin, "inbox.change", inbox.id, keys=keys)
    return redirect("/admin/inboxes?saved=saved")


def routes() -> list[web.RouteDef]:
    return [web.post("/admin/inboxes/{inbox_id}/routing", save_routing)]
