"""Campaigns in the REST API: an account's token creates a campaign, lists it, reads it with its counts
once sent, and stops a scheduled one; each is in the audit log. Bad input is a 400 or a 422 with
its reason; another account's token gets 404s and changes nothing."""

from __future__ import annotations

from typing import Any

import aiohttp
from aiohttp.test_utils import TestClient

from bot.keys import STORE
from bot.web.api.kit import issue_token
from conversations.campaigns import CampaignState
from conversations.models import utcnow
from conversations.traffic import Identity
from tests import factories
from tests.router.test_inbound import wait_for

BASE = "/api/accounts/default/campaigns"


async def token_of(client: TestClient, account: str) -> dict[str, str]:
    store = client.server.app[STORE]
    if await store.accounts.get_account(account) is None:
        await store.accounts.ensure_account(account, account.title(), utcnow())
    token = await issue_token(store, account, f"{account}-crm", ["read", "write"], "test")
    return {"Authorization": f"Bearer {token}"}


async def answer(response: aiohttp.ClientResponse) -> tuple[int, Any]:
    return response.status, await response.json()


async def test_a_token_creates_a_campaign_and_reads_it_with_its_counts(client: TestClient) -> None:
    store = client.server.app[STORE]
    for n in range(3):
        await store.contacts.find_or_create_contact("default", Identity("webchat", f"v-{n}"), None, utcnow())
    await store.contacts.find_or_create_contact("default", Identity("sms", "+37120000000"), None, utcnow())
    headers = await token_of(client, "default")
    body = {"name": "Spring sale", "channel": "webchat", "text": "20% off"}
    status, created = await answer(await client.post(BASE, json=body, headers=headers))
    assert status == 201, created
    assert created["name"] == "Spring sale" and created["channel"] == "webchat" and created["text"] == "20% off"
    assert created["state"] == "scheduled" and created["created_by"] == "api:default-crm"

    async def done() -> bool:
        return await store.campaigns.campaign_state(created["id"]) == CampaignState.DONE

    await wait_for(done, timeout=15)
    status, listed = await answer(await client.get(BASE, headers=headers))
    assert status == 200 and [c["id"] for c in listed["items"]] == [created["id"]]
    status, report = await answer(await client.get(f"{BASE}/{created['id']}", headers=headers))
    assert status == 200 and report["state"] == "done" and report["finished_at"]
    counts = report["counts"]
    assert counts["audience"] == 3 and counts["handled"] == 3 and counts["recipients"]["queued"] == 3
    assert sum(counts["deliveries"].values()) == 3 and counts["failures"] == [] and counts["interrupted"] == 0
    [entry] = await factories.audit(store, "default", action="campaign.create")
    assert entry.target == created["id"] and entry.actor == "api:default-crm"


async def test_a_scheduled_campaign_is_stopped_once(client: TestClient) -> None:
    headers = await token_of(client, "default")
    body = {
        "name": "Next year",
        "channel": "webchat",
        "text": "hello",
        "send_at": "2099-01-01T09:00:00+02:00",
        "audience": {"label": "vip", "attribute": "plan", "value": "gold", "contacted_after": "2026-01-01T00:00:00Z"},
    }
    status, created = await answer(await client.post(BASE, json=body, headers=headers))
    assert status == 201 and created["send_at"].startswith("2099-01-01T07:00:00")
    assert created["audience"]["label"] == "vip" and created["audience"]["attribute"] == "plan"
    path = f"{BASE}/{created['id']}/cancel"
    status, stopped = await answer(await client.post(path, headers=headers))
    assert status == 200 and stopped["state"] == "cancelled"
    status, again = await answer(await client.post(path, headers=headers))
    assert status == 409 and again["error"] == "campaign_finished"
    status, report = await answer(await client.get(f"{BASE}/{created['id']}", headers=headers))
    assert report["counts"]["handled"] == 0 and report["counts"]["audience"] == 0
    [entry] = await factories.audit(client.server.app[STORE], "default", action="campaign.cancel")
    assert entry.target == created["id"]


async def test_bad_campaigns_are_refused_with_their_reason(client: TestClient) -> None:
    headers = await token_of(client, "default")
    good = {"name": "x", "channel": "webchat", "text": "hello"}
    for body, status, error in (
        ({"channel": "webchat", "text": "hello"}, 400, "bad_request"),  # no name
        ({**good, "channel": "carrier-pigeon"}, 422, "channel_not_served"),
        ({**good, "send_at": "tomorrow"}, 400, "bad_request"),
        ({**good, "send_at": "2099-01-01T09:00:00"}, 400, "bad_request"),  # no time zone
        ({**good, "audience": {"attribute": "no spaces allowed"}}, 400, "bad_request"),
        ({**good, "audience": {"contacted_before": "soon"}}, 400, "bad_request"),
        ({**good, "text": "  "}, 422, "campaign_refused"),
        ({**good, "inbox_id": "inb_nothing"}, 422, "campaign_refused"),
        ({**good, "extra": 1}, 400, "bad_request"),
    ):
        got, answered = await answer(await client.post(BASE, json=body, headers=headers))
        assert (got, answered["error"]) == (status, error), (body, answered)
    assert await client.server.app[STORE].campaigns.list_campaigns("default") == []
    got, _ = await answer(await client.get(f"{BASE}/cmp_nothing", headers=headers))
    assert got == 404


async def test_another_account_s_token_reaches_no_campaign_of_this_one(client: TestClient) -> None:
    ours, theirs = await token_of(client, "default"), await token_of(client, "rival")
    body = {"name": "Ours", "channel": "webchat", "text": "hello", "send_at": "2099-01-01T00:00:00Z"}
    status, created = await answer(await client.post(BASE, json=body, headers=ours))
    assert status == 201
    for method, path, sent in (
        ("GET", BASE, None),
        ("POST", BASE, body),
        ("GET", f"{BASE}/{created['id']}", None),
        ("POST", f"{BASE}/{created['id']}/cancel", None),
        # its own account's path does not reach our campaign either
        ("GET", f"/api/accounts/rival/campaigns/{created['id']}", None),
        ("POST", f"/api/accounts/rival/campaigns/{created['id']}/cancel", None),
    ):
        response = await client.request(method, path, json=sent, headers=theirs)
        assert response.status == 404, (method, path)
    status, own = await answer(await client.get("/api/accounts/rival/campaigns", headers=theirs))
    assert status == 200 and own["items"] == []
    [campaign] = await client.server.app[STORE].campaigns.list_campaigns("default")
    assert campaign.state == CampaignState.SCHEDULED and campaign.name == "Ours"
