"""The REST API for an account's campaigns, as its admin has them on the console's campaigns pages:
list them, create one (sent at once, or at ``send_at``), read one with its counts, and stop one
that is scheduled or sending. Creating and stopping are in the audit log."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from bot import audit
from bot.keys import ADAPTERS, STORE
from bot.services.campaign_reports import campaign_json, report_json
from bot.services.campaigns import ATTRIBUTE_KEY, CampaignRefused, create_campaign
from bot.web.api.accounts import account_of
from bot.web.api.kit import ApiRoutes, Call, api_error, reply
from bot.web.keys import CAMPAIGNS
from conversations.campaigns import Audience, Campaign
from conversations.tenant_models import Account

API = ApiRoutes()
_TIME = {"type": ["string", "null"], "format": "date-time"}
_SHORT = {"type": "string", "minLength": 1, "maxLength": 200}
CAMPAIGN: dict[str, Any] = {"type": "object", "required": ["id", "name", "channel", "state", "send_at", "audience"]}
_COUNTS = {
    "type": "object",
    "required": ["audience", "handled", "recipients", "deliveries", "failures", "interrupted", "replied"],
    "properties": {
        "audience": {"type": "integer", "description": "contacts the campaign goes to (those handled, once done)"},
        "handled": {"type": "integer", "description": "recipients queued or skipped so far"},
        "recipients": {
            "type": "object",
            "additionalProperties": {"type": "integer"},
            "description": "recipients by state: queued, skipped, skipped:<reason> (no_identity, opted_out)",
        },
        "deliveries": {
            "type": "object",
            "additionalProperties": {"type": "integer"},
            "description": "the campaign's messages by delivery status (queued, sent, delivered, read, failed)",
        },
        "failures": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["reason", "count"],
                "properties": {"reason": {"type": "string"}, "count": {"type": "integer"}},
            },
        },
        "interrupted": {"type": "integer", "description": "sends a restart interrupted (may have been sent)"},
        "replied": {"type": "integer", "description": "conversations with a customer message after the send"},
    },
}
NEW_CAMPAIGN = {
    "type": "object",
    "required": ["name", "channel"],
    "properties": {
        "name": _SHORT,
        "channel": {"type": "string", "minLength": 1, "maxLength": 32},
        "inbox_id": {"type": "string", "minLength": 1, "maxLength": 64, "description": "an extra inbox to send from"},
        "text": {"type": "string", "maxLength": 2000, "description": "the message (not on WhatsApp: its template's)"},
        "subject": {"type": "string", "maxLength": 200, "description": "e-mail"},
        "template": {"type": "string", "maxLength": 200, "description": "a template of the channel (WhatsApp)"},
        "parameters": {"type": "array", "maxItems": 20, "items": {"type": "string", "maxLength": 1000}},
        "audience": {
            "type": "object",
            "description": "the contacts with an identity on the channel, narrowed by these",
            "properties": {
                "label": _SHORT,
                "attribute": {"type": "string", "pattern": f"^{ATTRIBUTE_KEY.pattern}$"},
                "value": {"type": "string", "maxLength": 200},
                "contacted_before": {"type": "string", "format": "date-time"},
                "contacted_after": {"type": "string", "format": "date-time"},
            },
            "additionalProperties": False,
        },
        "send_at": {"type": "string", "format": "date-time", "description": "when to send (default: now)"},
    },
    "additionalProperties": False,
}
_CAMPAIGN_JSON: dict[str, Any] = {
    **CAMPAIGN,
    "properties": {"send_at": _TIME, "created_at": _TIME, "finished_at": _TIME},
}
_REPORT = {
    **_CAMPAIGN_JSON,
    "required": [*CAMPAIGN["required"], "counts"],
    "properties": {**_CAMPAIGN_JSON["properties"], "counts": _COUNTS},
}


def _moment(value: Any, where: str) -> datetime | None:
    """An ISO 8601 time with its zone; a 400 otherwise."""
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(str(value))
        if moment.tzinfo is None:
            raise api_error(400, "bad_request", f"{where} needs a time zone (…Z or +00:00)")
        return moment.astimezone(UTC)
    except (ValueError, OverflowError):
        raise api_error(400, "bad_request", f"{where} must be an ISO 8601 time between the years 1 and 9999") from None


def _audience(body: dict[str, Any]) -> Audience:
    given = body.get("audience") or {}
    return Audience(
        label=given.get("label"),
        attribute=given.get("attribute"),
        value=given.get("value"),
        contacted_before=_moment(given.get("contacted_before"), "audience.contacted_before"),
        contacted_after=_moment(given.get("contacted_after"), "audience.contacted_after"),
    )


async def _campaign(request: web.Request, account: Account) -> Campaign:
    campaign_id = request.match_info["campaign_id"]
    campaign = await request.app[STORE].campaigns.get_campaign(account.id, campaign_id)
    if campaign is None:
        raise api_error(404, "not_found", f"no campaign {campaign_id} in account {account.id}")
    return campaign


@API(
    "GET",
    "/api/accounts/{account_id}/campaigns",
    "The account's campaigns, newest first (at most 100)",
    tag="campaigns",
    response={"type": "object", "properties": {"items": {"type": "array", "items": _CAMPAIGN_JSON}}},
)
async def list_campaigns(request: web.Request, call: Call) -> web.Response:
    account = await account_of(request, call)
    campaigns = await request.app[STORE].campaigns.list_campaigns(account.id)
    return reply({"items": [campaign_json(c) for c in campaigns]})


@API(
    "POST",
    "/api/accounts/{account_id}/campaigns",
    "Create a campaign: one message to each contact of its audience on a channel, through the outbox at"
    " the campaign's pace, now or at send_at",
    tag="campaigns",
    body=NEW_CAMPAIGN,
    response=_CAMPAIGN_JSON,
    status=201,
    errors=(422,),
)
async def new_campaign(request: web.Request, call: Call) -> web.Response:
    account, app, body = await account_of(request, call), request.app, call.body
    channel = body["channel"]
    if channel not in app[ADAPTERS]:
        raise api_error(422, "channel_not_served", f"this install does not serve {channel}")
    audience, send_at = _audience(body), _moment(body.get("send_at"), "send_at")
    try:
        campaign = await create_campaign(
            app[STORE],
            app[CAMPAIGNS],
            account_id=account.id,
            name=body["name"],
            channel=channel,
            text=body.get("text", ""),
            subject=(body.get("subject") or "").strip() or None,
            template=(body.get("template") or "").strip() or None,
            parameters=body.get("parameters", []),
            audience=audience,
            send_at=send_at,
            created_by=call.principal.audit_actor,
            inbox_id=body.get("inbox_id"),
        )
    except CampaignRefused as refused:
        raise api_error(422, "campaign_refused", str(refused)) from None
    actor = call.principal.audit_actor
    await audit.record(app[STORE], account.id, actor, "campaign.create", campaign.id, channel=channel)
    return reply(campaign_json(campaign), status=201)


@API(
    "GET",
    "/api/accounts/{account_id}/campaigns/{campaign_id}",
    "A campaign with its counts: recipients queued and skipped of its audience, deliveries by status,"
    " failures by reason, sends a restart interrupted, conversations answered",
    tag="campaigns",
    response=_REPORT,
)
async def get_campaign(request: web.Request, call: Call) -> web.Response:
    account = await account_of(request, call)
    campaign = await _campaign(request, account)
    return reply(await report_json(request.app[STORE], campaign))


@API(
    "POST",
    "/api/accounts/{account_id}/campaigns/{campaign_id}/cancel",
    "Stop a campaign that is scheduled or sending: no more of its messages are queued (those queued already go out)",
    tag="campaigns",
    response=_CAMPAIGN_JSON,
    errors=(409,),
)
async def cancel_campaign(request: web.Request, call: Call) -> web.Response:
    account, store = await account_of(request, call), request.app[STORE]
    campaign = await _campaign(request, account)
    if not await store.campaigns.cancel_campaign(account.id, campaign.id):
        raise api_error(409, "campaign_finished", f"the campaign {campaign.id} is {campaign.state}: nothing to stop")
    await audit.record(store, account.id, call.principal.audit_actor, "campaign.cancel", campaign.id)
    return reply(campaign_json(await _campaign(request, account)))


def routes() -> list[web.RouteDef]:
    return API.routes()
