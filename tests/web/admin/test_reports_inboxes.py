"""The reports page and CSV of one inbox, over HTTP: a supervisor picks an inbox of their account
and sees its figures alone; another account's inbox, or no inbox at all, is a 400 that shows
nothing of it; agents read no report of any inbox."""

from __future__ import annotations

import csv
import io
import re

from aiohttp.test_utils import TestClient

from bot.keys import STORE
from bot.services.accounts import create_account
from bot.services.agents import add_agent
from conversations.agent_models import Role
from tests import factories
from tests.services.test_reports_inboxes import second_bot, seed_two_inboxes
from tests.web.console.test_console import CSRF, log_in

PERIOD = "from=2025-03-01&until=2025-03-07"


def csrf(page: str) -> str:
    found = CSRF.search(page)
    assert found is not None
    return found.group(1)


async def supervisor(client: TestClient, account: str = "default", lang: str = "en") -> None:
    store = client.server.app[STORE]
    sue, password = await add_agent(store, account, f"sue-{account}", role=Role.SUPERVISOR)
    assert sue is not None
    await store.agents.update_agent(sue.id, lang=lang)
    page = await (await client.get("/login")).text()
    form = {"account": account, "login": f"sue-{account}", "password": password, "csrf_token": csrf(page)}
    assert (await client.post("/login", data=form, allow_redirects=False)).status == 303


async def test_a_supervisor_picks_an_inbox_and_sees_its_figures_alone(client: TestClient) -> None:
    store = client.server.app[STORE]
    inbox, _ = await seed_two_inboxes(store)
    await supervisor(client)
    every = await (await client.get(f"/admin/reports?{PERIOD}")).text()
    assert re.search(r'id="kpi-total">18<', every) and 'id="report-of-inbox"' not in every
    # the choice: every inbox, the first inbox of each channel by a name of its own, the second bot
    assert '<option value="">All inboxes</option>' in every
    assert '<option value="first:telegram">Telegram (first inbox)</option>' in every
    assert f'<option value="{inbox.id}">default sales bot</option>' in every
    assert "<td>WhatsApp (first inbox)</td><td>WhatsApp</td><td>6</td>" in every  # the by-inbox table

    answer = await client.get(f"/admin/reports?{PERIOD}&inbox={inbox.id}")
    assert answer.status == 200
    page = await answer.text()
    assert re.search(r'id="kpi-total">3<', page) and re.search(r'id="sla-first">1<', page)
    assert f'<option value="{inbox.id}" selected>' in page and 'id="report-of-inbox"' in page
    assert f"/admin/reports.csv?from=2025-03-01&amp;until=2025-03-07&amp;inbox={inbox.id}" in page
    first = await (await client.get(f"/admin/reports?{PERIOD}&inbox=first:whatsapp")).text()
    assert re.search(r'id="kpi-total">6<', first) and re.search(r'id="sla-first">0<', first)

    csv_answer = await client.get(f"/admin/reports.csv?{PERIOD}&inbox={inbox.id}")
    assert csv_answer.status == 200
    rows = {
        (r["section"], r["item"], r["measure"]): r["value"]
        for r in csv.DictReader(io.StringIO(await csv_answer.text()))
    }
    assert rows[("conversations", "", "total")] == "3" and rows[("period", "", "inbox")] == inbox.id
    entries = await factories.audit(store, action="report.export")
    assert entries[0].details == {"since": "2025-03-01", "until": "2025-03-07", "inbox": inbox.id}


async def test_the_first_inboxes_are_named_in_the_supervisors_language(client: TestClient) -> None:
    await seed_two_inboxes(client.server.app[STORE])
    await supervisor(client, lang="lv")
    page = await (await client.get(f"/admin/reports?{PERIOD}")).text()
    assert "WhatsApp (pirmā iesūtne)" in page
    lines = (await (await client.get(f"/admin/reports.csv?{PERIOD}")).text()).splitlines()
    assert "conversations_by_inbox,whatsapp: WhatsApp (pirmā iesūtne),count,6" in lines


async def test_another_accounts_inbox_or_an_unknown_one_is_a_400_that_shows_nothing(client: TestClient) -> None:
    store = client.server.app[STORE]
    await seed_two_inboxes(store)
    await create_account(store, "rival", "Rival", "rival-admin")
    theirs = await second_bot(store, "rival")
    await supervisor(client)
    for key in (theirs.id, "first:fax", "inb_" + "0" * 24, "telegram"):
        for path in ("/admin/reports", "/admin/reports.csv"):
            answer = await client.get(f"/admin/reports?{PERIOD}&inbox={key}".replace("/admin/reports", path, 1))
            assert answer.status == 400, (path, key)
            assert "rival sales bot" not in await answer.text()
    assert await factories.audit(store, action="report.export") == []
    # from the other side: rival's supervisor reads rival's inbox, and not default's
    client.session.cookie_jar.clear()
    await supervisor(client, "rival")
    page = await (await client.get(f"/admin/reports?{PERIOD}&inbox={theirs.id}")).text()
    assert re.search(r'id="kpi-total">0<', page) and "default sales bot" not in page
    mine = await (await client.get(f"/admin/reports?{PERIOD}")).text()
    assert "default sales bot" not in mine and re.search(r'id="kpi-total">0<', mine)


async def test_an_agent_reads_no_report_of_any_inbox(client: TestClient) -> None:
    store = client.server.app[STORE]
    inbox, _ = await seed_two_inboxes(store)
    _, password = await add_agent(store, "default", "plain", role=Role.AGENT, inboxes=[inbox.id])
    assert (await log_in(client, "plain", password)).status == 303
    for path in ("/admin/reports", "/admin/reports.csv"):
        assert (await client.get(f"{path}?{PERIOD}&inbox={inbox.id}")).status == 403, path
