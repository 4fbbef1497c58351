"""The REST API for webhook subscriptions: an account's endpoints for thread events, their secrets
(returned once, when made or replaced) and their recent deliveries (a dead one can be sent again)."""

from __future__ import annotations

from aiohttp import web

from bot import audit
from bot.keys import EGRESS, EVENTS, STORE, WEBHOOKS
from bot.router.webhooks.subscriptions import BadSubscription, check_events, check_url, new_secret, subscribe
from bot.web.api.kit import ACCOUNT, ApiRoutes, Call, Param, api_error, reply, visible
from bot.web.api.openapi import list_of, ref
from conversations.models import utcnow
from conversations.tenant_models import EVENT_TYPES, DeliveryState, WebhookSubscription

API = ApiRoutes()
_URL = {"type": "string", "pattern": r"^https?://\S+$", "maxLength": 2000}
_EVENTS = {"type": "array", "minItems": 1, "uniqueItems": True, "items": {"type": "string", "enum": list(EVENT_TYPES)}}
_WITH_SECRET = {
    "type": "object",
    "required": ["subscription", "secret"],
    "properties": {
        "subscription": ref("WebhookSubscription"),
        "secret": {"type": "string", "description": "shown only now"},
    },
}


async def _audit(
    request: web.Request, call: Call, action: str, subscription: WebhookSubscription, **details: str
) -> None:
    await audit.record(
        request.app[STORE], subscription.account_id, call.principal.audit_actor, action, subscription.id, **details
    )


async def _subscription(request: web.Request, call: Call) -> WebhookSubscription:
    subscription_id = request.match_info["subscription_id"]
    found: WebhookSubscription = visible(
        call.principal,
        await request.app[STORE].webhooks.get_webhook(subscription_id),
        "webhook subscription",
        subscription_id,
    )
    return found


@API(
    "GET",
    "/api/webhooks",
    "The account's webhook subscriptions",
    tag="webhooks",
    response=list_of("WebhookSubscription"),
    query=(ACCOUNT,),
)
async def list_webhooks(request: web.Request, call: Call) -> web.Response:
    assert call.account_id is not None
    return reply({"items": [s.public() for s in await request.app[STORE].webhooks.list_webhooks(call.account_id)]})


@API(
    "POST",
    "/api/webhooks",
    "Subscribe a URL to thread events (the signing secret is returned once)",
    tag="webhooks",
    status=201,
    query=(ACCOUNT,),
    response=_WITH_SECRET,
    body={
        "type": "object",
        "required": ["url"],
        "additionalProperties": False,
        "properties": {
            "url": _URL,
            "events": {**_EVENTS, "description": "default: every event type"},
            "description": {"type": "string", "maxLength": 200},
        },
    },
)
async def create_webhook(request: web.Request, call: Call) -> web.Response:
    assert call.account_id is not None
    try:
        subscription, secret = await subscribe(
            request.app[STORE],
            request.app[EVENTS],
            call.account_id,
            call.body["url"],
            call.body.get("events", list(EVENT_TYPES)),
            call.body.get("description", ""),
            request.app[EGRESS].webhooks,
        )
    except BadSubscription as exc:
        raise api_error(400, "bad_request", str(exc)) from None
    await _audit(request, call, "webhook.create", subscription)
    return reply({"subscription": subscription.public(), "secret": secret}, status=201)


@API(
    "GET",
    "/api/webhooks/{subscription_id}",
    "One webhook subscription",
    tag="webhooks",
    response=ref("WebhookSubscription"),
)
async def get_webhook(request: web.Request, call: Call) -> web.Response:
    return reply((await _subscription(request, call)).public())


@API(
    "PATCH",
    "/api/webhooks/{subscription_id}",
    "Change a subscription's URL, events, description, or switch it off and on",
    tag="webhooks",
    response=ref("WebhookSubscription"),
    body={
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "url": _URL,
            "events": _EVENTS,
            "description": {"type": "string", "maxLength": 200},
            "active": {"type": "boolean"},
        },
    },
)
async def patch_webhook(request: web.Request, call: Call) -> web.Response:
    subscription, changes = await _subscription(request, call), dict(call.body)
    try:
        if "url" in changes:
            changes["url"] = await check_url(changes["url"], request.app[EGRESS].webhooks)
        if "events" in changes:
            changes["events"] = check_events(changes["events"])
    except BadSubscription as exc:
        raise api_error(400, "bad_request", str(exc)) from None
    changed = await request.app[STORE].webhooks.update_webhook(subscription.account_id, subscription.id, **changes)
    request.app[EVENTS].forget(subscription.account_id)
    await _audit(request, call, "webhook.update", subscription, fields=",".join(sorted(changes)))
    return reply((changed or subscription).public())


@API(
    "DELETE",
    "/api/webhooks/{subscription_id}",
    "Delete a subscription (its pending deliveries too)",
    tag="webhooks",
    response={"type": "object", "required": ["deleted"], "properties": {"deleted": {"type": "string"}}},
)
async def delete_webhook(request: web.Request, call: Call) -> web.Response:
    subscription = await _subscription(request, call)
    await request.app[STORE].webhooks.delete_webhook(subscription.account_id, subscription.id)
    request.app[EVENTS].forget(subscription.account_id)
    await _audit(request, call, "webhook.delete", subscription)
    return reply({"deleted": subscription.id})


@API(
    "POST",
    "/api/webhooks/{subscription_id}/secret",
    "Replace the signing secret (the new one is returned once; deliveries from now on are signed with it)",
    tag="webhooks",
    response=_WITH_SECRET,
)
async def rotate_secret(request: web.Request, call: Call) -> web.Response:
    subscription, secret = await _subscription(request, call), new_secret()
    changed = await request.app[STORE].webhooks.update_webhook(subscription.account_id, subscription.id, secret=secret)
    await _audit(request, call, "webhook.rotate", subscription)
    return reply({"subscription": (changed or subscription).public(), "secret": secret})


@API(
    "GET",
    "/api/webhooks/{subscription_id}/deliveries",
    "The subscription's recent deliveries, newest first",
    tag="webhooks",
    response=list_of("WebhookDelivery"),
    query=(
        Param("state", {"type": "string", "enum": [s.value for s in DeliveryState]}, "only deliveries in this state"),
        Param("limit", {"type": "integer", "minimum": 1, "maximum": 500, "default": 50}, "how many, at most"),
    ),
)
async def list_deliveries(request: web.Request, call: Call) -> web.Response:
    subscription, state = await _subscription(request, call), call.query.get("state")
    deliveries = await request.app[STORE].webhooks.list_deliveries(
        subscription.id, DeliveryState(state) if state else None, call.query["limit"]
    )
    return reply({"items": [d.public() for d in deliveries]})


@API(
    "POST",
    "/api/webhooks/{subscription_id}/deliveries/{delivery_id}/retry",
    "Send a dead (or sent) delivery again",
    tag="webhooks",
    response=ref("WebhookDelivery"),
    errors=(409,),
)
async def retry_delivery(request: web.Request, call: Call) -> web.Response:
    subscription, delivery_id = await _subscription(request, call), request.match_info["delivery_id"]
    delivery = await request.app[STORE].webhooks.get_delivery(delivery_id)
    if delivery is None or delivery.subscription_id != subscription.id:
        raise api_error(404, "not_found", f"no delivery {delivery_id}")
    again = await request.app[STORE].webhooks.redeliver(delivery_id, utcnow())
    if again is None:
        raise api_error(409, "pending", f"delivery {delivery_id} is still pending")
    request.app[WEBHOOKS].wake()
    await _audit(request, call, "webhook.redeliver", subscription, delivery=delivery_id)
    return reply(again.public())


def routes() -> list[web.RouteDef]:
    return API.routes()
