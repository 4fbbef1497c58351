"""Admin pages of campaigns: the account's campaigns with their progress, a form to create one (with
the audience's size and, for SMS, the message's segment count shown before sending), and a
campaign's report (recipients queued and skipped, deliveries by status, failures with reasons)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from bot import audit
from bot.handlers.kit.twilio_lines import serves_of
from bot.handlers.sms.segments import shape
from bot.keys import ADAPTERS, STORE
from bot.services.campaign_reports import outcomes, progress
from bot.services.campaigns import ATTRIBUTE_KEY, CampaignRefused, create_campaign
from bot.web.admin.intents import back
from bot.web.i18n import translate
from bot.web.keys import CAMPAIGNS
from bot.web.pages import current_agent, page, signed_in
from conversations.agent_models import Role
from conversations.campaigns import Audience
from conversations.tenant_models import Inbox

LIST = "/admin/campaigns"
FIELDS: tuple[str, ...] = ("name", "channel", "inbox", "text", "subject", "template", "parameters")
FIELDS += ("label", "attribute", "value", "before", "after", "send_at")  # the audience, the time


class _BadForm(ValueError):
    pass


def _moment(value: str, field: str) -> datetime | None:
    """A date (``2026-05-01``) or a date and time (``2026-05-01T09:30``), in UTC; empty: none."""
    value = value.strip()
    if not value:
        return None
    try:
        return datetime.fromisoformat(value).replace(tzinfo=UTC)
    except ValueError:
        raise _BadForm(field) from None


def _audience(form: dict[str, str]) -> Audience:
    if form["attribute"].strip() and not ATTRIBUTE_KEY.fullmatch(form["attribute"].strip()):
        raise _BadForm("attribute")
    return Audience(
        label=form["label"].strip() or None,
        attribute=form["attribute"].strip() or None,
        value=form["value"].strip() or None,
        contacted_before=_moment(form["before"], "before"),
        contacted_after=_moment(form["after"], "after"),
    )


def _calls_only(inbox: Inbox) -> bool:
    return inbox.channel == "sms" and serves_of(inbox.config) == "calls"


async def _context(request: web.Request, form: dict[str, str]) -> dict[str, Any]:
    agent, store = current_agent(request), request.app[STORE]
    campaigns = await store.campaigns.list_campaigns(agent.account_id)
    served, every = request.app[ADAPTERS], await store.inboxes.list_inboxes(agent.account_id)
    # what a campaign may send through (a Twilio number for calls only sends no texts)
    usable = [i for i in every if i.channel in served and not i.disabled and not _calls_only(i)]
    return {
        "inboxes": usable,
        "first_mailbox": _first_mailbox(request, agent.account_id, usable),
        "inbox_names": {i.id: i.name for i in every},
        "rows": [await progress(store, c) for c in campaigns],
        "channels": sorted(request.app[ADAPTERS].keys()),
        "form": form,
        "message": request.query.get("message", "")[:300],
        "error": "",
        "preview": None,
        "segments": shape(form["text"]).segments if form["channel"] == "sms" and form["text"] else None,
    }


def _first_mailbox(request: web.Request, account_id: str, usable: list[Inbox]) -> dict[str, Any] | None:
    """What an e-mail campaign left on the channel's first inbox sends from, when that is not the
    install's own mailbox: the account's only mailbox (``{"name": …}``), or none it can choose by
    itself (``{"name": None, "several": …}``); ``None``: e-mail is not served, or the account is the
    install's own mailbox's."""
    if "email" not in request.app[ADAPTERS] or request.app[CAMPAIGNS].first_mailbox_account == account_id:
        return None
    mailboxes = [i for i in usable if i.channel == "email"]
    if len(mailboxes) == 1:
        return {"name": mailboxes[0].name}
    return {"name": None, "several": len(mailboxes) > 1}


def _form_of(values: Any) -> dict[str, str]:
    return {key: str(values.get(key, ""))[:2000] for key in FIELDS}


@signed_in(Role.ADMIN)
async def campaigns_page(request: web.Request) -> web.Response:
    """The list and the create form; ``?preview=1`` with the form's fields counts the audience."""
    agent, form = current_agent(request), _form_of(request.query)
    context = await _context(request, form)
    if request.query.get("preview") and form["channel"]:
        try:
            audience = _audience(form)
        except _BadForm:
            context["error"] = translate(agent.lang, "A date or an attribute name is not valid.")
            return page(request, "campaigns.html", status=400, **context)
        context["preview"] = await request.app[STORE].campaigns.audience_size(
            agent.account_id, form["channel"], audience
        )
    return page(request, "campaigns.html", **context)


@signed_in(Role.ADMIN)
async def create(request: web.Request) -> web.Response:
    agent, form = current_agent(request), _form_of(await request.post())
    refused = ""
    if form["channel"] not in request.app[ADAPTERS]:
        refused = translate(agent.lang, "Choose one of the channels this install serves.")
    else:
        try:
            campaign = await create_campaign(
                request.app[STORE],
                request.app[CAMPAIGNS],
                account_id=agent.account_id,
                name=form["name"],
                channel=form["channel"],
                text=form["text"],
                subject=form["subject"].strip() or None,
                template=form["template"].strip() or None,
                parameters=[p.strip() for p in form["parameters"].splitlines() if p.strip()],
                audience=_audience(form),
                send_at=_moment(form["send_at"], "send_at"),
                created_by=agent.id,
                inbox_id=form["inbox"].strip() or None,
            )
        except _BadForm:
            refused = translate(agent.lang, "A date or an attribute name is not valid.")
        except CampaignRefused as exc:
            refused = translate(agent.lang, "Not created: {problem}", problem=str(exc))
    if refused:
        context = await _context(request, form)
        context["error"] = refused
        return page(request, "campaigns.html", status=400, **context)
    await audit.record(
        request.app[STORE], agent.account_id, agent, "campaign.create", campaign.id, channel=campaign.channel
    )
    return back(f"{LIST}/{campaign.id}", translate(agent.lang, "Campaign created."))


@signed_in(Role.ADMIN)
async def report(request: web.Request) -> web.Response:
    agent, store = current_agent(request), request.app[STORE]
    campaign = await store.campaigns.get_campaign(agent.account_id, request.match_info["campaign_id"])
    if campaign is None:
        raise web.HTTPNotFound()
    return page(
        request,
        "campaign.html",
        **await progress(store, campaign),
        **await outcomes(store, campaign),
        message=request.query.get("message", "")[:300],
    )


@signed_in(Role.ADMIN)
async def cancel(request: web.Request) -> web.Response:
    agent = current_agent(request)
    campaign_id = request.match_info["campaign_id"]
    if await request.app[STORE].campaigns.cancel_campaign(agent.account_id, campaign_id):
        await audit.record(request.app[STORE], agent.account_id, agent, "campaign.cancel", campaign_id)
    elif await request.app[STORE].campaigns.get_campaign(agent.account_id, campaign_id) is None:
        raise web.HTTPNotFound()
    return back(f"{LIST}/{campaign_id}", translate(agent.lang, "Campaign stopped."))


def routes() -> list[web.RouteDef]:
    return [
        web.get(LIST, campaigns_page),
        web.post(LIST, create),
        web.get(LIST + "/{campaign_id}", report),
        web.post(LIST + "/{campaign_id}/cancel", cancel),
    ]
