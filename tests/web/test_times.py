"""Every time on a page says its zone, and the admin pages cover the same days by default."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from aiohttp.test_utils import TestClient

from bot.web.admin.period import DEFAULT_PERIOD_DAYS
from bot.web.keys import FIRST_ADMIN
from tests.router.test_queue import customer_writes
from tests.web.console.test_console import console_csrf, log_in
from tests.web.test_codes import visible_text

CLOCK = re.compile(r"\b\d{1,2}:\d{2}\b(?!:)(?P<after>.{0,4})")


async def test_every_time_in_the_console_says_its_zone(client: TestClient) -> None:
    app = client.server.app
    thread_id = await customer_writes(app, "visitor-1", "Where is my order?")
    login, password = app[FIRST_ADMIN]
    await log_in(client, login, password)
    await client.post("/console/shift", data={"action": "start", "csrf_token": await console_csrf(client)})
    text = visible_text(await (await client.get("/console", params={"thread": thread_id})).text())
    clocks = list(CLOCK.finditer(text))
    assert len(clocks) >= 3  # the SLA's due time, the message, the timeline
    assert all(found["after"].startswith(" UTC") for found in clocks), [found[0] for found in clocks]


async def test_reports_timesheet_and_audit_default_to_the_same_period(client: TestClient) -> None:
    login, password = client.server.app[FIRST_ADMIN]
    await log_in(client, login, password)
    today = datetime.now(UTC).date()
    expected = ((today - timedelta(days=DEFAULT_PERIOD_DAYS - 1)).isoformat(), today.isoformat())
    for path in ("/admin", "/admin/reports", "/admin/audit"):
        html = await (await client.get(path)).text()
        since = re.search(r'name="from" value="([^"]+)"', html)
        until = re.search(r'name="until" value="([^"]+)"', html)
        assert since and until and (since[1], until[1]) == expected, path
    assert (await client.get("/admin", params={"from": "2026-02-01", "until": "2026-01-01"})).status == 400
