"""The router's HTTP surface beyond the channels: operations, REST API, the agent console and
admin pages, static files."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from aiohttp import web

from bot.handlers.kit.protocol import FollowsEvents
from bot.keys import ADAPTERS, SETTINGS, STORE
from bot.services.agents import add_agent
from bot.tasks import stop_tasks
from bot.web import ops, unsubscribe
from bot.web.admin import account as admin_account
from bot.web.admin import accounts as admin_accounts
from bot.web.admin import agents as admin_agents
from bot.web.admin import answers as admin_answers
from bot.web.admin import campaigns as admin_campaigns
from bot.web.admin import inbox_buttons as admin_inbox_buttons
from bot.web.admin import inbox_domains as admin_inbox_domains
from bot.web.admin import inbox_routing as admin_inbox_routing
from bot.web.admin import inboxes as admin_inboxes
from bot.web.admin import intents as admin_intents
from bot.web.admin import privacy as admin_privacy
from bot.web.admin import reports as admin_reports
from bot.web.admin import training as admin_training
from bot.web.api import (
    accounts,
    campaigns,
    directory,
    inboxes,
    intents,
    learning,
    messages,
    nlu,
    openapi,
    replies,
    threads,
    webhooks,
)
from bot.web.api import reports as reports_api
from bot.web.api import search as search_api
from bot.web.api.kit import ApiRoutes
from bot.web.chat import rating as chat_rating
from bot.web.chat import widget as chat_widget
from bot.web.chat import words as chat_words
from bot.web.console import (
    contact_merge,
    contact_panel,
    conversations,
    files,
    inbox,
    login,
    login_code,
    search,
    security,
)
from bot.web.console.auth import ended_sessions
from bot.web.console.live import ConsoleHub, LiveFeed
from bot.web.console.login_throttle import LOGIN_LIMITER, LoginLimiter
from bot.web.console.wa_templates import TEMPLATES, ChannelTemplates
from bot.web.keys import API_OPERATIONS, CONSOLE_HUB, FIRST_ADMIN
from bot.web.pages import setup_templates
from conversations.agent_models import Role

STATIC = Path(__file__).resolve().parent / "static"
SOCKET_CHECK_SECONDS = 2.0  # how soon a console socket closes after its session ends elsewhere
# the REST API, table by table: each one's routes are served, checked and documented in
# /api/openapi.json
API_TABLES: list[ApiRoutes] = [
    messages.API,
    replies.API,
    threads.API,
    directory.API,
    search_api.API,
    accounts.API,
    inboxes.API,
    campaigns.API,
    reports_api.API,
    webhooks.API,
    nlu.API,
    intents.API,
    learning.API,
]


async def _index(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound("/chat")


async def _favicon(request: web.Request) -> web.StreamResponse:
    """The icon at the address browsers ask for by themselves (pages link it from /static too)."""
    return web.FileResponse(STATIC / "favicon.svg", headers={"Cache-Control": "public, max-age=86400"})


def setup_web(app: web.Application) -> None:
    app.add_routes(ops.routes())
    for table in API_TABLES:
        app.add_routes(table.routes())
    app[API_OPERATIONS] = [op for table in API_TABLES for op in table.operations]
    app.add_routes(openapi.routes())
    app.add_routes(login.routes() + login_code.routes())
    app.add_routes(security.routes())
    app.add_routes(inbox.routes())
    app.add_routes(conversations.routes())
    app.add_routes(contact_panel.routes() + contact_merge.routes())
    app.add_routes(files.routes())
    app.add_routes(search.routes())
    app.add_routes(admin_agents.routes())
    app.add_routes(admin_reports.routes() + admin_privacy.routes())
    app.add_routes(admin_campaigns.routes() + unsubscribe.routes())
    app.add_routes(admin_intents.routes() + admin_answers.routes() + admin_training.routes())
    app.add_routes(
        admin_account.routes()
        + admin_inboxes.routes()
        + admin_inbox_buttons.routes()
        + admin_inbox_routing.routes()
        + admin_inbox_domains.routes()
    )
    app.add_routes(admin_accounts.routes())
    app.add_routes(chat_words.routes() + chat_rating.routes())
    app.add_routes(chat_words.routes() + chat_widget.routes())
    app.middlewares.append(chat_widget.chat_frames)
    app.add_routes([web.get("/", _index), web.get("/favicon.ico", _favicon)])
    app.router.add_static("/static", STATIC, append_version=True)
    setup_templates(app)
    if TEMPLATES not in app:
        app[TEMPLATES] = ChannelTemplates(app)
    app.cleanup_ctx.append(_console_ctx)
    app.on_shutdown.append(_close_consoles)


async def _console_ctx(app: web.Application) -> AsyncIterator[None]:
    """Login limits, the first-run admin, and the live feed that refreshes consoles."""
    settings, store = app[SETTINGS], app[STORE]
    console_settings = settings.console
    app[LOGIN_LIMITER] = LoginLimiter(
        store,
        console_settings.login_attempts,
        console_settings.login_delay_seconds,
        console_settings.login_max_delay_seconds,
        console_settings.login_window_seconds,
    )
    app[FIRST_ADMIN] = await _first_admin(app)
    hub = ConsoleHub(functools.partial(inbox.render_live, app))
    app[CONSOLE_HUB] = hub
    mode = settings.console.live_feed
    if mode == "auto":
        mode = "poll" if await store.client.is_embedded_server() else "change_stream"
    # one follower of the log per process: the consoles, and the channels that act on it (the
    # web chat pushes the replies another process sent to the visitors connected here)
    followers = [adapter for adapter in app[ADAPTERS].values() if isinstance(adapter, FollowsEvents)]

    async def deliver(event: dict[str, Any]) -> None:
        await hub.deliver(event)
        for follower in followers:
            await follower.follow(event)

    def listening() -> bool:
        return bool(hub.sockets) or any(follower.following() for follower in followers)

    feed = asyncio.create_task(
        LiveFeed(store, mode, settings.console.poll_interval).run(deliver, listening), name="live-feed"
    )
    ended = functools.partial(ended_sessions, store, settings.console)
    watch = asyncio.create_task(hub.watch(ended, SOCKET_CHECK_SECONDS), name="console-sockets")
    try:
        yield
    finally:
        await stop_tasks([feed, watch])


async def _first_admin(app: web.Application) -> tuple[str, str] | None:
    """On a fresh install, an ``admin`` with a random password (shown once by ``serve``): the
    install's superadmin, who also manages accounts."""
    settings, store = app[SETTINGS], app[STORE]
    if not settings.console.first_admin or await store.agents.count_agents(settings.account.id):
        return None
    agent, password = await add_agent(store, settings.account.id, "admin", name="Administrator", role=Role.SUPERADMIN)
    return ("admin", password) if agent is not None else None


async def _close_consoles(app: web.Application) -> None:
    if CONSOLE_HUB in app:
        await app[CONSOLE_HUB].close_all()
