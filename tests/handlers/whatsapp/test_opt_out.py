"""WhatsApp opt-outs through the real adapter and the fake Graph API: a customer's STOP (in English,
Latvian or Russian) opts them out of WhatsApp campaigns and START back in, each confirmed when an
answer is configured; a campaign send Meta refuses with 131050 (the customer stopped marketing
messages in WhatsApp) records the opt-out and says why; the next campaign skips them and counts it."""

from __future__ import annotations

import copy
import dataclasses
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from bot.handlers.whatsapp.consent import keyword_of
from bot.keys import STORE
from bot.services.campaigns import create_campaign
from bot.settings import Settings
from bot.web.keys import CAMPAIGNS
from conversations.campaigns import CampaignState
from conversations.embedded import EmbeddedMongo
from conversations.models import utcnow
from conversations.repositories import Repositories
from conversations.traffic import Identity, Inbound
from tests.conftest import operator_client
from tests.factories import ACCOUNT
from tests.fakes.graph_api import FakeGraphAPI
from tests.handlers.channels import channel_settings, fixture, post_whatsapp
from tests.router.test_inbound import wait_for

CUSTOMER = "16505551234"  # the sender of the recorded text message
OTHER = "37120000001"
REPLIES = {
    "stop_reply": "You will get no more offers here. Send START to get them again.",
    "start_reply": "Welcome back!",
}


def campaign_settings(embedded: EmbeddedMongo, db_name: str, graph_api: FakeGraphAPI) -> Settings:
    """A router on WhatsApp (the fake Graph API) whose campaigns go out at once."""
    return channel_settings(
        embedded.uri, db_name, graph_api=graph_api.url, campaigns={"rate": 100, "poll_interval": 0.1}
    )


def text_message(body: str, n: int) -> dict[str, Any]:
    """A text from the customer, ``n`` seconds into the last minute (the service window is open)."""
    payload = copy.deepcopy(fixture("whatsapp", "text"))
    message = payload["entry"][0]["changes"][0]["value"]["messages"][0]
    message["text"]["body"], message["id"] = body, f"wamid.OPTOUT{n:04d}"
    message["timestamp"] = str(int(time.time()) - 60 + n)
    return payload


async def says(router: TestClient, body: str, n: int) -> None:
    assert (await post_whatsapp(router, text_message(body, n))).status == 200


async def texts_to(graph_api: FakeGraphAPI, address: str) -> list[str]:
    return [m["text"]["body"] for m in graph_api.sent_ok() if m["to"] == address and m.get("type") == "text"]


async def campaign_done(router: TestClient, name: str) -> str:
    store, sender = router.server.app[STORE], router.server.app[CAMPAIGNS]
    campaign = await create_campaign(
        store,
        sender,
        account_id=ACCOUNT,
        name=name,
        channel="whatsapp",
        text="",
        template="order_update",
        parameters=["Ann", "A-17"],
    )

    async def done() -> bool:
        return await store.campaigns.campaign_state(campaign.id) == CampaignState.DONE

    await wait_for(done)
    return campaign.id


async def templates_to(graph_api: FakeGraphAPI) -> list[str]:
    return sorted(m["to"] for m in graph_api.sent_ok() if m.get("type") == "template")


async def test_stop_opts_a_customer_out_of_whatsapp_campaigns_and_start_back_in(
    embedded: EmbeddedMongo, db_name: str, graph_api: FakeGraphAPI
) -> None:
    settings = channel_settings(
        embedded.uri, db_name, graph_api=graph_api.url, whatsapp=REPLIES, campaigns={"rate": 100, "poll_interval": 0.1}
    )
    async with operator_client(settings) as router:
        store: Repositories = router.server.app[STORE]
        await store.contacts.find_or_create_contact(ACCOUNT, Identity("whatsapp", OTHER), None, utcnow())
        await says(router, "  stop ", 1)

        async def opted_out() -> bool:
            return await store.phone.opted_out(ACCOUNT, "whatsapp", CUSTOMER)

        await wait_for(opted_out)
        await wait_for(lambda: _has(graph_api, CUSTOMER, REPLIES["stop_reply"]))  # confirmed to the customer
        first = await campaign_done(router, "First")
        await wait_for(lambda: _templates(graph_api, 1))
        assert await templates_to(graph_api) == [OTHER]  # the customer who said STOP gets nothing
        assert await store.campaigns.recipient_counts(first) == {"queued": 1, "skipped": 1, "skipped:opted_out": 1}

        await says(router, "START", 2)
        await wait_for(lambda: _has(graph_api, CUSTOMER, REPLIES["start_reply"]))
        assert not await opted_out()
        await campaign_done(router, "Second")
        await wait_for(lambda: _templates(graph_api, 3))
        assert await templates_to(graph_api) == sorted([OTHER, OTHER, CUSTOMER])

        await says(router, "Стоп", 3)  # the Russian word works as well
        await wait_for(opted_out)


async def test_ordinary_words_are_not_keywords_on_whatsapp(
    embedded: EmbeddedMongo, db_name: str, graph_api: FakeGraphAPI
) -> None:
    async with operator_client(channel_settings(embedded.uri, db_name, graph_api=graph_api.url)) as router:
        store: Repositories = router.server.app[STORE]
        for n, word in enumerate(["yes", "cancel", "stop it please"], start=1):
            await says(router, word, n)

        async def dispatched() -> bool:
            found = await store.messages.list_messages(ACCOUNT, direction="in")
            return len(found) == 3 and all(m.decision for m in found)

        await wait_for(dispatched)
        assert not await store.phone.opted_out(ACCOUNT, "whatsapp", CUSTOMER)


async def test_a_send_refused_with_131050_records_the_opt_out_and_says_why(
    embedded: EmbeddedMongo, db_name: str, graph_api: FakeGraphAPI
) -> None:
    async with operator_client(campaign_settings(embedded, db_name, graph_api)) as router:
        store: Repositories = router.server.app[STORE]
        await store.contacts.find_or_create_contact(ACCOUNT, Identity("whatsapp", OTHER), None, utcnow())
        graph_api.fail_next(
            400, code=131050, message="(#131050) This user has chosen to stop receiving marketing messages."
        )
        first = await campaign_done(router, "First")

        async def refused() -> bool:
            return bool(await store.campaigns.failure_reasons(first))

        await wait_for(refused)
        [(reason, count)] = await store.campaigns.failure_reasons(first)
        assert count == 1 and "131050" in reason and "stopped marketing messages" in reason
        assert await store.phone.opted_out(ACCOUNT, "whatsapp", OTHER)
        second = await campaign_done(router, "Second")
        assert await store.campaigns.recipient_counts(second) == {"skipped": 1, "skipped:opted_out": 1}
        assert await templates_to(graph_api) == []  # the refused one never reached a customer


async def _has(graph_api: FakeGraphAPI, address: str, text: str) -> bool:
    return text in await texts_to(graph_api, address)


async def _templates(graph_api: FakeGraphAPI, count: int) -> bool:
    return len(await templates_to(graph_api)) >= count


async def test_a_failed_status_with_131050_records_the_opt_out(
    embedded: EmbeddedMongo, db_name: str, graph_api: FakeGraphAPI
) -> None:
    """Meta may take the message and report the refusal later, in a status webhook."""
    async with operator_client(campaign_settings(embedded, db_name, graph_api)) as router:
        store: Repositories = router.server.app[STORE]
        await store.contacts.find_or_create_contact(ACCOUNT, Identity("whatsapp", CUSTOMER), None, utcnow())
        first = await campaign_done(router, "First")
        await wait_for(lambda: _templates(graph_api, 1))
        status = copy.deepcopy(fixture("whatsapp", "status_failed"))  # for wamid.FAKE000001, to CUSTOMER
        error = status["entry"][0]["changes"][0]["value"]["statuses"][0]["errors"][0]
        error.update(code=131050, title="Unable to deliver the message: the user stopped marketing messages")
        assert (await post_whatsapp(router, status)).status == 200
        assert await store.phone.opted_out(ACCOUNT, "whatsapp", CUSTOMER)
        [message] = await store.messages.list_messages(ACCOUNT, direction="out")
        assert message.delivery_status == "failed"
        assert (await store.messages.delivery_error(message.id) or "").startswith("131050: Unable to deliver")
        assert await store.campaigns.recipient_counts(first) == {"queued": 1}
        second = await campaign_done(router, "Second")
        assert await store.campaigns.recipient_counts(second) == {"skipped": 1, "skipped:opted_out": 1}


async def test_another_failed_status_records_no_opt_out(router_with_graph: TestClient) -> None:
    """A failure for another reason (here: outside the window) is not an opt-out."""
    assert (await post_whatsapp(router_with_graph, fixture("whatsapp", "status_failed"))).status == 200
    assert not await router_with_graph.server.app[STORE].phone.opted_out(ACCOUNT, "whatsapp", CUSTOMER)


@pytest.fixture
async def router_with_graph(
    embedded: EmbeddedMongo, db_name: str, graph_api: FakeGraphAPI
) -> AsyncIterator[TestClient]:
    async with operator_client(channel_settings(embedded.uri, db_name, graph_api=graph_api.url)) as router:
        yield router


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("STOP", "stop"),
        ("unsubscribe", "stop"),
        (" Atrakstīties ", "stop"),
        ("отписаться", "stop"),
        ("start", "start"),
        ("Pierakstīties", "start"),
        ("СТАРТ", "start"),
        ("yes", None),
        ("help", None),
        ("stop sending me this", None),
    ],
)
def test_the_keywords_are_whole_messages_in_any_case(text: str, kind: str | None) -> None:
    inbound = Inbound(
        account_id=ACCOUNT,
        channel="whatsapp",
        external_id="wamid.X",
        sender=Identity("whatsapp", CUSTOMER),
        text=text,
        meta={"type": "text"},
    )
    assert keyword_of(inbound) == kind
    assert keyword_of(dataclasses.replace(inbound, meta={"type": "button"})) is None  # a template's button


async def test_metas_marketing_preference_webhook_stops_and_resumes(router_with_graph: TestClient) -> None:
    """A customer who stops (or resumes) marketing messages in WhatsApp itself, without a send."""
    store: Repositories = router_with_graph.server.app[STORE]
    stop = fixture("whatsapp", "user_preferences")
    response = await post_whatsapp(router_with_graph, stop)
    assert response.status == 200 and (await response.json())["consents"] == 1
    assert await store.phone.opted_out(ACCOUNT, "whatsapp", CUSTOMER)
    resume = copy.deepcopy(stop)
    preference = resume["entry"][0]["changes"][0]["value"]["user_preferences"][0]
    preference.update(value="resume", timestamp=str(preference["timestamp"] + 60))  # a string works as well
    assert (await post_whatsapp(router_with_graph, resume)).status == 200
    assert not await store.phone.opted_out(ACCOUNT, "whatsapp", CUSTOMER)
    assert (await post_whatsapp(router_with_graph, stop)).status == 200  # a late copy of the older stop
    assert not await store.phone.opted_out(ACCOUNT, "whatsapp", CUSTOMER)
    preference.update(wa_id=" ", value="stop")
    no_customer = await post_whatsapp(router_with_graph, resume)  # left out on its own, not a 500 (nor a 400
    assert no_customer.status == 200 and "malformed" in (await no_customer.json())["ignored"]  # Meta would resend)
    assert not await store.phone.opted_out(ACCOUNT, "whatsapp", CUSTOMER)
