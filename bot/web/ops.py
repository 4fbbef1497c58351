"""Operational endpoints: ``/healthz`` for load balancers, ``/metrics`` for Prometheus."""

from __future__ import annotations

import asyncio

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from bot.keys import EMBEDDED, METRICS, QUEUE, STORE
from conversations.errors import StoreUnavailable


async def healthz(request: web.Request) -> web.Response:
    """200 with the store's status, or 503 when the store cannot be reached."""
    store_kind = "embedded" if request.app[EMBEDDED] is not None else "mongodb"
    try:
        await asyncio.wait_for(request.app[STORE].client.ping(), timeout=5)
    except (StoreUnavailable, TimeoutError):
        return web.json_response({"status": "unavailable", "store": {"kind": store_kind, "ok": False}}, status=503)
    return web.json_response({"status": "ok", "store": {"kind": store_kind, "ok": True}})


async def metrics(request: web.Request) -> web.Response:
    registry = request.app[METRICS]
    try:
        registry.queue_depth.set(await request.app[QUEUE].depth())
        registry.outbox_pending.set(await request.app[STORE].outbox.outbox_pending())
    except StoreUnavailable:
        pass  # the gauges keep their last value; /healthz reports the outage
    body = generate_latest(registry.registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def routes() -> list[web.RouteDef]:
    return [web.get("/healthz", healthz), web.get("/metrics", metrics)]
