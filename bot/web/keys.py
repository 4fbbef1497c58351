"""The web layer's shared state, as typed ``web.AppKey`` entries, beside the application's own
keys in ``bot/keys.py``: the services the routes call (built by the application factory once the
pipeline runs), and what ``setup_web`` builds (the console hub, the first-run admin, the API's
operations)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from bot.services import Services
    from bot.services.campaigns import CampaignSender
    from bot.web.api.kit import Operation
    from bot.web.console.live import ConsoleHub

CONSOLE_HUB: web.AppKey[ConsoleHub] = web.AppKey("console_hub")
FIRST_ADMIN: web.AppKey[tuple[str, str] | None] = web.AppKey("first_admin")  # (login, password) once
API_OPERATIONS: web.AppKey[list[Operation]] = web.AppKey("api_operations")  # what /api/openapi.json describes
SERVICES: web.AppKey[Services] = web.AppKey("services")  # what console and API both do
CAMPAIGNS: web.AppKey[CampaignSender] = web.AppKey("campaigns")  # sends campaigns; woken when one is due
