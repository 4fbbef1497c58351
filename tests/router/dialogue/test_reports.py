"""The bot's part of the reports from real conversations: containment per intent, and what became
of the forms (started, completed, abandoned, handed to a person), on the page and in the CSV."""

from __future__ import annotations

from aiohttp.test_utils import TestClient

from bot.keys import STORE
from bot.services.reports import build_report, report_csv
from conversations.models import utcnow
from tests.nlu.test_policy import say
from tests.router.dialogue.conftest import Start
from tests.web.admin.test_admin_data import admin_client

CONVERSATIONS = [
    ["where is my order?", "A-10234"],  # completed (offline answer)
    ["where is my order?", "cancel"],  # abandoned
    ["where is my order?", "I want to talk to a real person"],  # handed to a person
    ["what are your opening hours?"],  # answered
]


async def talk(client: TestClient) -> None:
    for n, texts in enumerate(CONVERSATIONS):
        async with client.ws_connect("/webchat/ws") as ws:  # a new visitor each
            await ws.receive_json()
            for m, text in enumerate(texts):
                await say(ws, f"r{n}-{m}", text)


async def test_containment_by_intent_and_form_outcomes(bot: Start) -> None:
    client = await bot()
    await talk(client)
    today = utcnow().date()
    report = await build_report(
        client.server.app[STORE], "default", today, today, first_response_minutes=15, now=utcnow()
    )
    rows = {row.intent: (row.conversations, row.contained) for row in report.intents}
    assert rows == {"order_status": (3, 2), "opening_hours": (1, 1)}
    [form] = report.forms
    assert (form.form, form.started, form.completed, form.abandoned, form.handed_off) == (
        "order_status_form", 3, 1, 1, 1
    )  # fmt: skip
    csv = report_csv(report)
    assert "bot_forms,order_status_form,handed_off,1" in csv and "bot_intents,order_status,contained,2" in csv

    await admin_client(client)
    html = await (await client.get(f"/admin/reports?from={today}&until={today}")).text()
    assert "<tr><td>order_status_form</td><td>3</td><td>1</td><td>1</td><td>1</td></tr>" in html
    assert '<meter min="0" max="1" value="0.667"></meter> 67 %' in html


async def test_form_outcomes_count_past_the_summarys_last_ten_steps(bot: Start) -> None:
    """One customer starting and cancelling the form six times: twelve steps, all counted."""
    client = await bot()
    async with client.ws_connect("/webchat/ws") as ws:
        await ws.receive_json()
        for n in range(6):
            await say(ws, f"again-{n}", "where is my order?")
            await say(ws, f"cancel-{n}", "cancel")
    today = utcnow().date()
    report = await build_report(
        client.server.app[STORE], "default", today, today, first_response_minutes=15, now=utcnow()
    )
    [form] = report.forms
    assert (form.started, form.completed, form.abandoned, form.handed_off) == (6, 0, 6, 0)


async def test_an_empty_period_tells_how_to_set_forms_up(bot: Start) -> None:
    client = await bot()
    await admin_client(client)
    html = await (await client.get("/admin/reports?from=2024-01-01&until=2024-01-02")).text()
    assert "No form was started in this period. Forms are set up in config/dialogue" in html
    assert "The bot recognised no intent in this period" in html
