"""A campaign by e-mail through the real adapter to a local SMTP server: its own subject, the
one-click unsubscribe headers of RFC 8058 with an https link, and the link's POST recording an
opt-out that the next campaign respects."""

from __future__ import annotations

import re
from typing import Any

from bot.keys import STORE
from bot.services.campaigns import create_campaign
from bot.web.keys import CAMPAIGNS
from conversations.campaigns import CampaignState
from conversations.embedded import EmbeddedMongo
from conversations.models import utcnow
from conversations.repositories import Repositories
from conversations.traffic import Identity
from tests.factories import ACCOUNT
from tests.handlers.conftest import email_settings
from tests.mailservers import SmtpSink
from tests.router.test_inbound import wait_for

PUBLIC = "https://router.example.com"
CUSTOMERS = ("ann@example.org", "ben@example.org")


async def done(store: Repositories, campaign_id: str) -> bool:
    return await store.campaigns.campaign_state(campaign_id) == CampaignState.DONE


async def test_campaign_mail_carries_one_click_unsubscribe_and_the_link_opts_out(
    embedded: EmbeddedMongo, db_name: str, smtp_sink: SmtpSink, start_client: Any
) -> None:
    settings = email_settings(embedded.uri, db_name, dovecot=None, user="", sink=smtp_sink)
    settings = settings.replace("server", public_url=PUBLIC).replace("campaigns", rate=100, poll_interval=0.1)
    client = await start_client(settings)
    store = client.server.app[STORE]
    for address in CUSTOMERS:
        await store.contacts.find_or_create_contact(ACCOUNT, Identity("email", address), None, utcnow())

    async def send(name: str) -> str:
        campaign = await create_campaign(
            store,
            client.server.app[CAMPAIGNS],
            account_id=ACCOUNT,
            name=name,
            channel="email",
            text="Our spring catalogue is out.",
            subject="Spring catalogue",
        )
        await wait_for(lambda: done(store, campaign.id))
        return campaign.id

    await send("Spring")
    await wait_for(lambda: has_mail(smtp_sink, 2))
    by_recipient = {rcpt[0]: message for rcpt, message, _ in smtp_sink.received}
    assert sorted(by_recipient) == sorted(CUSTOMERS)
    ann = by_recipient["ann@example.org"]
    assert str(ann["Subject"]).startswith("Spring catalogue [#")
    assert ann["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    link = re.fullmatch(r"<(https://router\.example\.com(/unsubscribe/[\w-]+))>", str(ann["List-Unsubscribe"]).strip())
    assert link is not None, str(ann["List-Unsubscribe"])

    confirm = await client.get(link.group(2))  # a scanner following the link changes nothing
    assert confirm.status == 200 and "ann@example.org" in await confirm.text()
    assert not await store.phone.opted_out(ACCOUNT, "email", "ann@example.org")
    clicked = await client.post(link.group(2), data={"List-Unsubscribe": "One-Click"})
    assert clicked.status == 200
    assert await store.phone.opted_out(ACCOUNT, "email", "ann@example.org")
    assert (await client.post("/unsubscribe/not-a-token")).status == 404

    second = await send("Summer")
    await wait_for(lambda: has_mail(smtp_sink, 3))
    assert [rcpt for rcpt, _, _ in smtp_sink.received[2:]] == [["ben@example.org"]]
    counts = await store.campaigns.recipient_counts(second)
    assert counts == {"queued": 1, "skipped": 1, "skipped:opted_out": 1}


async def has_mail(sink: SmtpSink, count: int) -> bool:
    return len(sink.received) >= count
