"""The router's HTTP surface beyond the channels: operations, REST API, static files."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from bot.web import api, nlu_api, ops

STATIC = Path(__file__).resolve().parent / "static"


async def _index(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound("/chat")


def setup_web(app: web.Application) -> None:
    app.add_routes(ops.routes())
    app.add_routes(api.routes())
    app.add_routes(nlu_api.routes())
    app.add_routes([web.get("/", _index)])
    app.router.add_static("/static", STATIC, append_version=True)
