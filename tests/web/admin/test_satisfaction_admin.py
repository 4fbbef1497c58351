"""Customer satisfaction for admins: the report (page and CSV) of their own account only, and the
ratings exported and erased with the contact."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime

from aiohttp.test_utils import TestClient

from bot.keys import STORE
from bot.router.satisfaction import SatisfactionSettings
from bot.services.agents import add_agent
from bot.services.contacts import erase_contact, export_contact, find_contact
from conversations.agent_models import Role
from conversations.models import utcnow
from conversations.repositories import Repositories
from conversations.satisfaction import SatisfactionAsk
from tests import factories
from tests.router.test_queue import customer_writes
from tests.web.console.test_console import CSRF

DAY = datetime(2025, 3, 3, 10, 0, tzinfo=UTC)
PASSWORD = "correct horse battery"


async def rated(
    store: Repositories,
    account: str,
    n: int,
    rating: int | None,
    *,
    agent: str,
    team: str = "",
    channel: str = "webchat",
) -> SatisfactionAsk:
    ask = SatisfactionAsk(
        f"sat_{account}_{n}", account, f"thr_{account}_{n}", f"cnt_{n}", channel, DAY, "en", agent, team
    )
    await store.satisfaction.record_ask(ask)
    if rating is not None:
        await store.satisfaction.rate(account, ask.id, rating, DAY, comment=f"comment {account} {n}")
    return ask


async def admin_of(client: TestClient, account: str, login: str) -> None:
    store = client.server.app[STORE]
    if account != "default":
        await factories.account(store, account)
    agent, _ = await add_agent(store, account, login, name=login.title(), role=Role.ADMIN, password=PASSWORD)
    assert agent is not None
    token = CSRF.search(await (await client.get("/login")).text()).group(1)  # type: ignore[union-attr]
    form = {"account": account, "login": login, "password": PASSWORD, "csrf_token": token}
    assert (await client.post("/login", data=form, allow_redirects=False)).status == 303


async def seed(store: Repositories) -> str:
    ann = await factories.agent(store, "ann")
    await rated(store, "default", 1, 5, agent=ann.id, team="billing")
    await rated(store, "default", 2, 4, agent=ann.id, team="billing", channel="telegram")
    await rated(store, "default", 3, 2, agent="agt_gone", channel="telegram")
    await rated(store, "default", 4, None, agent=ann.id)  # asked, not answered
    skipped = SatisfactionAsk("sat_default_5", "default", "thr_5", "cnt_5", "whatsapp", DAY, skipped="window_closed")
    await store.satisfaction.record_ask(skipped)
    return ann.id


async def test_the_report_shows_csat_by_agent_team_channel_and_day(client: TestClient) -> None:
    store = client.server.app[STORE]
    await seed(store)
    await admin_of(client, "default", "boss")
    html = await (await client.get("/admin/reports?from=2025-03-01&until=2025-03-07")).text()
    assert re.search(r'id="kpi-csat">67 %<', html) and re.search(r'id="kpi-csat-average">3.7<', html)
    assert re.search(r'id="kpi-csat-skipped">1<', html)
    agents = html.split('id="csat-by-agent"')[1].split("</table>")[0]
    assert re.search(r"<td>ann</td><td>2</td><td>100 %</td><td>4.5</td>", agents)
    channels = html.split('id="csat-by-channel"')[1].split("</table>")[0]
    assert re.search(r"<td>Telegram</td><td>2</td><td>50 %</td><td>3.0</td>", channels)
    assert "comment default 1" in html

    response = await client.get("/admin/reports.csv?from=2025-03-01&until=2025-03-07")
    rows = {
        (r["section"], r["item"], r["measure"]): r["value"] for r in csv.DictReader(io.StringIO(await response.text()))
    }
    assert rows[("satisfaction", "", "asked")] == "5" and rows[("satisfaction", "", "unanswered")] == "1"
    assert rows[("satisfaction", "", "csat")] == "0.667" and rows[("satisfaction", "", "skipped")] == "1"
    assert rows[("satisfaction_by_agent", "ann", "rated")] == "2"
    assert rows[("satisfaction_by_team", "billing", "average")] == "4.50"
    assert rows[("satisfaction_by_channel", "telegram", "satisfied")] == "1"
    assert rows[("satisfaction_by_day", "2025-03-03", "rated")] == "3"


async def test_another_accounts_admin_sees_none_of_these_ratings(client: TestClient) -> None:
    store = client.server.app[STORE]
    await seed(store)
    await rated(store, "acme", 9, 1, agent="agt_acme")
    await admin_of(client, "acme", "acme-boss")
    html = await (await client.get("/admin/reports?from=2025-03-01&until=2025-03-07")).text()
    assert re.search(r'id="kpi-csat">0 %<', html) and re.search(r'id="kpi-csat-rated">1<', html)
    assert "comment default" not in html and "comment acme 9" in html
    text = await (await client.get("/admin/reports.csv?from=2025-03-01&until=2025-03-07")).text()
    assert ",ann," not in text and "billing" not in text and "satisfaction,,asked,1" in text


async def test_ratings_are_exported_and_erased_with_the_contact(client: TestClient) -> None:
    app = client.server.app
    store = app[STORE]
    thread_id = await customer_writes(app, "visitor-rates", "hello")
    thread = await store.threads.get_thread(thread_id)
    assert thread is not None
    ask = SatisfactionAsk("sat_mine", "default", thread.id, thread.contact_id, "webchat", DAY)
    await store.satisfaction.record_ask(ask)
    await store.satisfaction.rate("default", ask.id, 3, DAY, comment="my private opinion")
    others = await rated(store, "default", 7, 5, agent="agt_x")  # another contact's rating stays

    scope = await find_contact(store, "default", thread.contact_id)
    exported = await export_contact(store, scope, "cli")
    assert [r["comment"] for r in exported["data"]["satisfaction"]] == ["my private opinion"]
    await erase_contact(store, scope, "cli")
    assert await store.satisfaction.get_ask("default", ask.id) is None
    assert await store.satisfaction.get_ask("default", others.id) is not None


async def test_the_admin_turns_the_question_on_and_words_it_per_language(client: TestClient) -> None:
    store = client.server.app[STORE]
    await admin_of(client, "default", "boss")
    page = await (await client.get("/admin/account")).text()
    assert 'id="csat-enabled">' in page and "Reply with a number from 1 (poor) to 5 (excellent)." in page
    token = CSRF.search(page).group(1)  # type: ignore[union-attr]
    form = {"csrf_token": token, "enabled": "on", "quiet_days": "14", "question_lv": "Novērtējiet mūs no 1 līdz 5!"}
    assert (await client.post("/admin/account/satisfaction", data=form, allow_redirects=False)).status == 303
    settings = SatisfactionSettings.of(await store.accounts.get_account("default"))
    assert settings.enabled and settings.quiet_days == 14
    assert settings.text("question", "lv") == "Novērtējiet mūs no 1 līdz 5!"
    assert settings.text("question", "ru").startswith("Как вы оцените")  # the default where none is set
    assert 'id="csat-enabled" checked>' in await (await client.get("/admin/account")).text()
    for bad in ({"quiet_days": "-1"}, {"quiet_days": "x"}, {"quiet_days": "3", "thanks_en": "x" * 501}):
        assert (await client.post("/admin/account/satisfaction", data={"csrf_token": token, **bad})).status == 400
    assert SatisfactionSettings.of(await store.accounts.get_account("default")).quiet_days == 14
    [entry] = await factories.audit(store, action="settings.satisfaction")
    assert entry.details == {"enabled": True, "quiet_days": 14.0}


async def test_only_an_admin_changes_the_question_and_only_of_their_account(client: TestClient) -> None:
    store = client.server.app[STORE]
    await add_agent(store, "default", "ria", name="Ria", role=Role.AGENT, password=PASSWORD)
    token = CSRF.search(await (await client.get("/login")).text()).group(1)  # type: ignore[union-attr]
    await client.post("/login", data={"login": "ria", "password": PASSWORD, "csrf_token": token})
    token = CSRF.search(await (await client.get("/console")).text()).group(1)  # type: ignore[union-attr]
    refused = await client.post(
        "/admin/account/satisfaction", data={"csrf_token": token, "enabled": "on", "quiet_days": "1"}
    )
    assert refused.status == 403
    assert SatisfactionSettings.of(await store.accounts.get_account("default")).enabled is False
    await client.post("/logout", data={"csrf_token": token})

    await admin_of(client, "acme", "acme-boss")
    token = CSRF.search(await (await client.get("/admin/account")).text()).group(1)  # type: ignore[union-attr]
    form = {"csrf_token": token, "enabled": "on", "quiet_days": "1"}
    assert (await client.post("/admin/account/satisfaction", data=form, allow_redirects=False)).status == 303
    assert SatisfactionSettings.of(await store.accounts.get_account("acme")).enabled
    assert not SatisfactionSettings.of(await store.accounts.get_account("default")).enabled


async def test_the_agents_table_shows_each_agents_satisfaction_of_the_last_30_days(client: TestClient) -> None:
    store = client.server.app[STORE]
    ann = await factories.agent(store, "ann")
    await factories.agent(store, "bob")
    for n, rating in enumerate((5, 3, 4)):
        ask = SatisfactionAsk(f"sat_now_{n}", "default", f"thr_now_{n}", f"cnt_{n}", "sms", utcnow(), agent_id=ann.id)
        await store.satisfaction.record_ask(ask)
        await store.satisfaction.rate("default", ask.id, rating, utcnow())
    await rated(store, "default", 9, 1, agent=ann.id)  # in 2025: outside the 30 days
    await admin_of(client, "default", "boss")
    html = await (await client.get("/admin")).text()
    assert re.search(r'id="csat-ann">67 % · 4.0 \(3\)<', html) and re.search(r'id="csat-bob">—<', html)
