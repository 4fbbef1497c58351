"""Campaigns in the console: an admin previews the audience, creates a campaign and reads its report
as the sending goes; a bad form is refused with a 400; an agent, and another account's admin, are
out of reach."""

from __future__ import annotations

from datetime import timedelta

from aiohttp.test_utils import TestClient

from bot.keys import STORE
from bot.services.accounts import create_account
from bot.services.agents import add_agent
from conversations.agent_models import Role
from conversations.campaigns import CampaignState
from conversations.models import utcnow
from conversations.outbox import INTERRUPTED
from conversations.traffic import Identity
from tests import factories
from tests.factories import inbound, record
from tests.router.test_inbound import wait_for
from tests.web.admin.test_answers import PASSWORD, log_in_to
from tests.web.console.test_console import log_in

FORM = {"name": "Spring sale", "channel": "webchat", "text": "20% off", "subject": "", "template": "", "parameters": ""}
FORM |= {"label": "", "attribute": "", "value": "", "before": "", "after": "", "send_at": ""}


async def admin_of(client: TestClient, account: str, login: str) -> str:
    store = client.server.app[STORE]
    if account != "default":
        await create_account(store, account, account.title(), None)
    await add_agent(store, account, login, name=login, role=Role.ADMIN, password=PASSWORD)
    return await log_in_to(client, account, login)


async def test_an_admin_previews_creates_and_follows_a_campaign(client: TestClient) -> None:
    store = client.server.app[STORE]
    for n in range(3):
        await store.contacts.find_or_create_contact("default", Identity("webchat", f"v-{n}"), None, utcnow())
    await store.contacts.find_or_create_contact("default", Identity("sms", "+37120000000"), None, utcnow())
    csrf = await admin_of(client, "default", "ada")

    preview = await client.get("/admin/campaigns", params={**FORM, "preview": "1"})
    assert preview.status == 200
    assert "3 contacts in the audience." in await preview.text()
    sms = await (await client.get("/admin/campaigns", params={**FORM, "channel": "sms", "text": "ж" * 71})).text()
    assert "SMS segments per message: 2" in sms

    created = await client.post("/admin/campaigns", data={**FORM, "csrf_token": csrf}, allow_redirects=False)
    assert created.status == 303
    report_path = created.headers["Location"].split("?")[0]
    [campaign] = await store.campaigns.list_campaigns("default")

    async def done() -> bool:
        return await store.campaigns.campaign_state(campaign.id) == CampaignState.DONE

    await wait_for(done, timeout=15)
    report = await (await client.get(report_path)).text()
    assert 'id="kpi-queued">3<' in report
    listing = await (await client.get("/admin/campaigns")).text()
    assert 'value="3"' in listing and "Spring sale" in listing


async def test_a_bad_campaign_form_is_refused_with_a_400(client: TestClient) -> None:
    csrf = await admin_of(client, "default", "ada")
    bad_forms = [{"channel": "carrier-pigeon"}, {"text": " "}, {"send_at": "tomorrow"}, {"after": "13/13/2026"}]
    bad_forms += [{"attribute": "$where"}, {"attribute": "a.b"}]
    for bad in bad_forms:
        response = await client.post("/admin/campaigns", data={**FORM, **bad, "csrf_token": csrf})
        assert response.status == 400, bad
    assert await client.server.app[STORE].campaigns.list_campaigns("default") == []
    for bad in ({"before": "soon"}, {"attribute": "$gt"}):
        preview = await client.get("/admin/campaigns", params={**FORM, "preview": "1", **bad})
        assert preview.status == 400, bad


async def test_another_accounts_admin_and_an_agent_cannot_reach_a_campaign(client: TestClient) -> None:
    csrf = await admin_of(client, "default", "ada")
    created = await client.post(
        "/admin/campaigns", data={**FORM, "send_at": "2099-01-01T00:00", "csrf_token": csrf}, allow_redirects=False
    )
    report_path = created.headers["Location"].split("?")[0]
    assert (await client.get(report_path)).status == 200

    rival_csrf = await admin_of(client, "rival", "rita")
    assert (await client.get(report_path)).status == 404
    stopped = await client.post(f"{report_path}/cancel", data={"csrf_token": rival_csrf})
    assert stopped.status == 404
    assert "Spring sale" not in await (await client.get("/admin/campaigns")).text()

    await add_agent(client.server.app[STORE], "default", "andy", name="andy", role=Role.AGENT, password=PASSWORD)
    client.session.cookie_jar.clear()
    assert (await log_in(client, "andy", PASSWORD)).status == 303
    assert (await client.get(report_path, allow_redirects=False)).status in (403, 404)
    [campaign] = await client.server.app[STORE].campaigns.list_campaigns("default")
    assert campaign.state == CampaignState.SCHEDULED
    assert [e.action for e in await factories.audit(client.server.app[STORE], "default", "campaign.")] == [
        "campaign.create"
    ]
    assert await factories.audit(client.server.app[STORE], "rival", action="campaign.cancel") == []


async def test_the_report_counts_the_sends_a_restart_interrupted_apart_from_the_failures(client: TestClient) -> None:
    store = client.server.app[STORE]
    csrf = await admin_of(client, "default", "ada")
    created = await client.post(
        "/admin/campaigns", data={**FORM, "send_at": "2099-01-01T00:00", "csrf_token": csrf}, allow_redirects=False
    )
    report_path = created.headers["Location"].split("?")[0]
    [campaign] = await store.campaigns.list_campaigns("default")
    _, thread, _ = await record(store, inbound())
    # a message of the campaign a process leased to itself, then died (with the provider's answer)
    await store.outbox.store_outbound(
        dedup_key=f"cmp:{campaign.id}:c1",
        thread=thread,
        to=Identity("webchat", "v-1"),
        text="20% off",
        sender={"kind": "bot"},
        now=utcnow(),
        meta={"campaign": campaign.id},
        leased_by=("worker-that-died", timedelta(seconds=0.2)),
        at_most_once=True,
    )

    async def given_up() -> bool:
        return await store.campaigns.interrupted_count(campaign.id) == 1

    await wait_for(given_up, timeout=15)  # the app's own worker leases it once the lease ran out
    report = await (await client.get(report_path)).text()
    assert 'id="kpi-interrupted">1<' in report
    assert INTERRUPTED not in report  # not among the providers' reasons: a row of its own
