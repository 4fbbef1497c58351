"""The reports page in Debian's headless Chromium: charts drawn under the console's strict CSP,
the CSV downloaded, and the page in Latvian."""

from __future__ import annotations

import csv
import io

import pytest
from aiohttp.test_utils import TestClient
from playwright.async_api import Browser, expect

from bot.keys import STORE
from bot.services.agents import add_agent
from conversations.agent_models import Role
from tests.report_data import seed
from tests.web.console.test_console_browser import agent_page, csp_violations

pytestmark = pytest.mark.browser


async def test_an_admin_reads_the_charts_and_downloads_the_csv(client: TestClient, browser: Browser) -> None:
    base = f"http://127.0.0.1:{client.server.port}"
    store = client.server.app[STORE]
    await seed(store)
    _, password = await add_agent(store, "default", "rita", name="Rita", role=Role.ADMIN)
    page = await agent_page(browser, base, "rita", password)
    violations = csp_violations(page)
    await page.goto(f"{base}/admin")
    await page.click(".admin-nav a[href='/admin/reports']")
    await page.fill("input[name=from]", "2025-03-01")
    await page.fill("input[name=until]", "2025-03-07")
    await page.click("#period button")
    await expect(page.locator("#kpi-total")).to_have_text("15")
    await expect(page.locator("svg.chart")).to_have_count(7)
    channels = page.locator("#by-channel svg rect.bar")
    await expect(channels).to_have_count(5)
    assert await channels.first.locator("title").text_content() == "WhatsApp: 6"
    widths = [float(await bar.get_attribute("width") or 0) for bar in await channels.all()]
    assert widths[0] > widths[1] > widths[2] > 0  # drawn to scale: 6, 3, 2
    box = await page.locator("#by-day svg").bounding_box()
    assert box is not None and box["width"] > 300 and box["height"] > 100  # really rendered
    fill = await channels.first.evaluate("bar => getComputedStyle(bar).fill")
    assert fill == "rgb(41, 82, 204)"  # the stylesheet's colour reached the SVG
    await expect(page.locator("#timing-resolution td").nth(3)).to_have_text("1.2 h")  # p90 4320 s

    async with page.expect_download() as info:
        await page.click("#report-csv")
    download = await info.value
    assert download.suggested_filename == "report-2025-03-01-2025-03-07.csv"
    text = open(await download.path(), encoding="utf-8").read()
    rows = {(r["section"], r["item"], r["measure"]): r["value"] for r in csv.DictReader(io.StringIO(text))}
    assert rows[("timing", "queue_wait", "median_s")] == "165" and rows[("containment", "", "contained")] == "4"
    assert violations == []

    await page.click("button[name=lang][value=lv]")
    await page.goto(f"{base}/admin/reports?from=2025-03-01&until=2025-03-07")
    await expect(page.locator("#period h2")).to_have_text("Pārskati")
    await expect(page.locator("#by-channel h2")).to_have_text("Sarunas pa kanāliem")

    await page.click("button[name=lang][value=ru]")
    await page.goto(f"{base}/admin/reports?from=2025-03-01&until=2025-03-07")
    await expect(page.locator("#period h2")).to_have_text("Отчёты")
    await expect(page.locator("#by-channel h2")).to_have_text("Диалоги по каналам")
    await expect(page.locator("body")).to_contain_text("4 диалога не дошли до очереди операторов")  # the few form
