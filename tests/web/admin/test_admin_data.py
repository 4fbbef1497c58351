"""The admin pages of issue 7's data part over HTTP: reports (charts, CSV), the audit log (what
is recorded, filters, pages, CSV), retention settings, and a contact's export and erasure."""

from __future__ import annotations

import csv
import io
import json
import re

from aiohttp.test_utils import TestClient

from bot.keys import PIPELINE, STORE
from bot.services.agents import add_agent
from bot.web.keys import FIRST_ADMIN
from conversations.agent_models import Role
from conversations.traffic import Identity, Inbound
from tests import factories
from tests.report_data import seed
from tests.router.test_queue import customer_writes
from tests.web.console.test_console import console_csrf, log_in


async def admin_client(client: TestClient) -> str:
    """Log the first-run admin in; returns the session's CSRF token."""
    login, password = client.server.app[FIRST_ADMIN]  # type: ignore[misc]
    await log_in(client, login, password)
    return await console_csrf(client)


async def test_the_reports_page_draws_the_seeded_week(client: TestClient) -> None:
    await seed(client.server.app[STORE])
    await admin_client(client)
    response = await client.get("/admin/reports?from=2025-03-01&until=2025-03-07")
    assert response.status == 200
    assert "unsafe-inline" not in response.headers["Content-Security-Policy"]
    html = await response.text()
    assert html.count("<svg") == 7 and " style=" not in html and "<script>" not in html.replace("<script src", "")
    assert re.search(r'id="kpi-total">15<', html) and re.search(r'id="kpi-containment">27 %<', html)
    assert re.search(
        r'<tr id="timing-first_response"><th>First response</th><td>10</td><td>15 min</td>'
        r"<td>7.5 min</td><td>33 min</td>",
        html,
    )
    assert "<title>WhatsApp: 6</title>" in html and 'id="sla-first">4<' in html


async def test_the_report_downloads_as_csv(client: TestClient) -> None:
    await seed(client.server.app[STORE])
    await admin_client(client)
    response = await client.get("/admin/reports.csv?from=2025-03-01&until=2025-03-07")
    assert response.status == 200 and response.content_type == "text/csv"
    assert response.headers["Content-Disposition"] == 'attachment; filename="report-2025-03-01-2025-03-07.csv"'
    rows = {
        (r["section"], r["item"], r["measure"]): r["value"] for r in csv.DictReader(io.StringIO(await response.text()))
    }
    assert rows[("timing", "resolution", "p90_s")] == "4320" and rows[("agents", "ann", "conversations")] == "5"
    entries = await factories.audit(client.server.app[STORE], action="report.export")
    assert len(entries) == 1 and entries[0].details == {"since": "2025-03-01", "until": "2025-03-07"}


async def test_report_periods_are_checked_and_agents_refused(client: TestClient) -> None:
    await admin_client(client)
    for query in ("from=2025-13-01", "from=2025-03-07&until=2025-03-01", "from=2020-01-01&until=2025-01-01"):
        response = await client.get(f"/admin/reports?{query}")
        assert response.status == 400, query
    assert (await client.get("/admin/reports")).status == 200  # the last 30 days by default
    _, password = await add_agent(client.server.app[STORE], "default", "plain", role=Role.AGENT)
    client.session.cookie_jar.clear()
    assert (await log_in(client, "plain", password)).status == 303
    for path in ("/admin/reports", "/admin/reports.csv", "/admin/audit", "/admin/audit.csv", "/admin/contacts"):
        assert (await client.get(path)).status == 403, path


async def test_console_actions_are_audited_without_personal_data(client: TestClient) -> None:
    app = client.server.app
    store = app[STORE]
    token = await admin_client(client)
    admin = await store.agents.agent_by_login("default", "admin")
    assert admin is not None
    await client.post("/console/shift", data={"action": "start", "csrf_token": token})
    thread_id = await customer_writes(app, "visitor-a", "My card number is 4111 1111 1111 1111")
    await client.post(f"/console/threads/{thread_id}/take", data={"csrf_token": token})
    await client.post(
        f"/console/threads/{thread_id}/reply",
        data={"csrf_token": token, "text": "Secret reply", "nonce": "nonce-audit-1"},
    )
    await client.post(f"/console/threads/{thread_id}/note", data={"csrf_token": token, "text": "Secret note"})
    await client.post(f"/console/threads/{thread_id}/transfer", data={"csrf_token": token, "team": "billing"})
    await client.post("/admin/agents", data={"csrf_token": token, "login": "newbie", "role": "agent", "capacity": "3"})
    await client.post("/admin/routing", data={"csrf_token": token, "strategy": "next", "timezone": "UTC"})
    await client.post("/admin/canned", data={"csrf_token": token, "shortcut": "hi", "text": "Hello!"})
    client.session.cookie_jar.clear()
    assert (await log_in(client, "admin", "wrong password")).status == 401
    entries = [e.to_doc() for e in await factories.audit(store)]
    actions = [e["action"] for e in entries]
    assert actions == [
        "login",
        "shift.start",
        "thread.take",
        "thread.reply",
        "thread.note",
        "thread.transfer",
        "agent.create",
        "settings.routing",
        "settings.canned",
        "login.failed",
    ]
    by_action = {e["action"]: e for e in entries}
    assert by_action["thread.take"]["actor"] == admin.id and by_action["thread.take"]["actor_name"] == "admin"
    assert by_action["thread.reply"]["target"] == thread_id and by_action["thread.transfer"]["details"] == {
        "team": "billing"
    }
    assert by_action["login.failed"]["target"] == "admin" and by_action["login.failed"]["actor"] == "unknown"
    text = json.dumps(entries, default=str)
    assert "4111" not in text and "Secret" not in text and "visitor-a" not in text


async def test_api_actions_are_audited_without_secrets(client: TestClient) -> None:
    app = client.server.app
    store = app[STORE]
    thread_id = await customer_writes(app, "visitor-api", "hello")
    reply = await client.post(
        f"/api/threads/{thread_id}/replies", json={"id": "crm-1", "text": "From the CRM", "agent": "crm"}
    )
    assert reply.status == 202
    stored = await client.put(
        "/api/accounts/default/channels/telegram", json={"token": "123:very-secret", "webhook_secret": "s3"}
    )
    assert stored.status == 200
    entries = [e.to_doc() for e in await factories.audit(store, actor="api")]
    assert [(e["action"], e["target"]) for e in entries] == [
        ("thread.reply", thread_id),
        ("settings.channel", "default"),
    ]
    assert entries[0]["details"]["agent"] == "crm" and entries[1]["details"] == {
        "channel": "telegram",
        "keys": "token,webhook_secret",
    }
    assert "very-secret" not in json.dumps(entries, default=str) and "From the CRM" not in json.dumps(
        entries, default=str
    )


async def test_the_audit_log_filters_pages_and_exports(client: TestClient) -> None:
    app = client.server.app
    store = app[STORE]
    token = await admin_client(client)
    for n in range(60):
        await client.post("/admin/canned", data={"csrf_token": token, "shortcut": f"c{n}", "text": "x"})
    first = await (await client.get("/admin/audit?action=settings.canned")).text()
    assert first.count('class="audit-row"') == 50 and 'id="audit-older"' in first
    assert "<code>c59</code>" in first and "<code>c0</code>" not in first  # newest first
    second = await (await client.get("/admin/audit?action=settings.canned&page=2")).text()
    assert second.count('class="audit-row"') == 10 and "<code>c0</code>" in second and 'id="audit-older"' not in second
    mine = await (await client.get("/admin/audit?action=login")).text()
    assert mine.count('class="audit-row"') == 1
    nobody = await (await client.get("/admin/audit?actor=cli")).text()
    assert nobody.count('class="audit-row"') == 0 and "Nothing recorded" in nobody
    old = await (await client.get("/admin/audit?from=2020-01-01&until=2020-01-31")).text()
    assert old.count('class="audit-row"') == 0
    assert (await client.get("/admin/audit?page=0")).status == 400
    assert (await client.get("/admin/audit?action=%3Cscript%3E")).status == 400
    exported = await client.get("/admin/audit.csv?action=settings.")
    assert exported.status == 200 and exported.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(await exported.text())))
    assert len(rows) == 60 and {r["action"] for r in rows} == {"settings.canned"} and rows[0]["actor_login"] == "admin"
    assert len(await factories.audit(store, action="audit.export")) == 1


async def test_retention_is_set_per_account_on_the_settings_page(client: TestClient) -> None:
    store = client.server.app[STORE]
    token = await admin_client(client)
    page = await (await client.get("/admin")).text()
    assert 'id="retention"' in page and "Messages are kept with no time limit." in page
    assert (await client.post("/admin/retention", data={"csrf_token": token, "days": "-3"})).status == 400
    assert (
        await client.post("/admin/retention", data={"csrf_token": token, "days": "90"}, allow_redirects=False)
    ).status == 303
    account = await store.accounts.get_account("default")
    assert account is not None and account.retention_days == 90
    assert "Messages older than 90 days are deleted." in await (await client.get("/admin")).text()
    await client.post("/admin/retention", data={"csrf_token": token, "days": ""})
    account = await store.accounts.get_account("default")
    assert account is not None and account.retention_days is None
    details = [e.details for e in await factories.audit(store, action="settings.retention")]
    assert details == [{"days": 90}, {"days": "default"}]


async def test_an_admin_exports_and_erases_a_contact(client: TestClient) -> None:
    app = client.server.app
    store = app[STORE]
    token = await admin_client(client)
    thread_id = await customer_writes(app, "visitor-erase", "please forget me")
    thread = await store.threads.get_thread(thread_id)
    assert thread is not None
    found = await (await client.get("/admin/contacts?q=webchat:visitor-erase")).text()
    assert f'id="contact-id">{thread.contact_id}<' in found
    export = await client.get(f"/admin/contacts/{thread.contact_id}/export.json")
    assert export.status == 200 and "attachment" in export.headers["Content-Disposition"]
    document = json.loads(await export.text())
    assert document["contact_id"] == thread.contact_id
    assert [m["text"] for m in document["data"]["messages"] if m["direction"] == "in"] == ["please forget me"]
    refused = await client.post(
        f"/admin/contacts/{thread.contact_id}/erase", data={"csrf_token": token, "confirm": "yes"}
    )
    assert refused.status == 400 and await store.contacts.get_contact(thread.contact_id) is not None
    done = await client.post(
        f"/admin/contacts/{thread.contact_id}/erase",
        data={"csrf_token": token, "confirm": thread.contact_id},
        allow_redirects=False,
    )
    assert done.status == 303 and "Receipt" in done.headers["Location"]
    assert await store.contacts.get_contact(thread.contact_id) is None
    assert await factories.messages(store) == []
    missing = await client.get(f"/admin/contacts/{thread.contact_id}/export.json")
    assert missing.status == 404
    assert "No contact found." in await (await client.get("/admin/contacts?q=visitor-erase")).text()
    actions = [e.action for e in await factories.audit(store, action="contact.")]
    assert sorted(actions) == ["contact.erase", "contact.export"]


async def test_contacts_are_found_by_name_address_or_id(client: TestClient) -> None:
    app = client.server.app
    await admin_client(client)
    recorded, task = await app[PIPELINE].receive(
        Inbound(
            account_id="default",
            channel="webchat",
            external_id="zed-1",
            sender=Identity("webchat", "v-zed"),
            text="hi",
            sender_name="Zelda Ozola",
        )
    )
    if task is not None:
        await task
    thread = recorded.thread
    by_name = await (await client.get("/admin/contacts?q=ozol")).text()
    assert f"/admin/contacts?q={thread.contact_id}" in by_name and "Zelda Ozola" in by_name
    by_address = await (await client.get("/admin/contacts?q=v-zed")).text()
    assert f'id="contact-id">{thread.contact_id}<' in by_address
    by_id = await (await client.get(f"/admin/contacts?q={thread.contact_id}")).text()
    assert "webchat:v-zed" in by_id
