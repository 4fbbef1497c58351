"""A campaign sent through one of the account's extra inboxes: each message goes out through that
inbox's own bot (its token), number or mailbox (its SMTP server, from its address), its threads are
the inbox's; an inbox of another account, of another channel or disabled is refused, in the service
and in the console's form. An account without a mailbox of its own sends e-mail campaigns through
its mailbox inbox."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import aiosmtplib
import pytest

from bot.handlers.email.settings import EmailSettings
from bot.keys import STORE
from bot.services.accounts import create_account
from bot.services.campaigns import CampaignRefused, create_campaign
from bot.web.keys import CAMPAIGNS
from conversations.embedded import EmbeddedMongo, free_port
from conversations.models import utcnow
from conversations.repositories import Repositories
from conversations.tenant_models import Inbox
from conversations.traffic import Identity
from tests.conftest import make_settings, operator_client, raw_database_of
from tests.factories import ACCOUNT
from tests.fakes import running
from tests.fakes.graph_api import FakeGraphAPI
from tests.fakes.telegram_api import FakeBotAPI
from tests.fakes.twilio import FakeTwilio
from tests.handlers.channels import channel_settings
from tests.handlers.email.test_email import mail
from tests.handlers.sms.test_sms import sms_settings
from tests.mailservers import SmtpSink
from tests.router.test_inbound import wait_for
from tests.web.admin.test_campaigns import FORM, admin_of


@pytest.fixture
async def second_bot() -> AsyncIterator[FakeBotAPI]:
    fake = FakeBotAPI(token="222:second-bot")
    await fake.start()
    yield fake
    await fake.stop()


async def _inbox(store: Repositories, account: str, fake: FakeBotAPI, name: str) -> Inbox:
    config = {"token": fake.token, "webhook_secret": f"{name}-secret", "api_base": fake.url}
    inbox = await store.inboxes.create_inbox(account, "telegram", name, config, utcnow(), None)
    assert inbox is not None
    return inbox


def _settings(embedded: EmbeddedMongo, db_name: str, bot_api: FakeBotAPI, second: FakeBotAPI) -> Any:
    allowed = ", ".join(f.url.removeprefix("http://") for f in (bot_api, second))
    return channel_settings(
        embedded.uri,
        db_name,
        telegram_api=bot_api.url,
        campaigns={"rate": 50, "poll_interval": 0.1},
        egress={"allowed_destinations": allowed},
    )


async def test_a_campaign_through_a_second_bot_goes_out_with_that_bots_token(
    embedded: EmbeddedMongo, db_name: str, bot_api: FakeBotAPI, second_bot: FakeBotAPI
) -> None:
    async with operator_client(_settings(embedded, db_name, bot_api, second_bot)) as client:
        store = client.server.app[STORE]
        sales = await _inbox(store, ACCOUNT, second_bot, "Sales bot")
        for n in range(3):
            await store.contacts.find_or_create_contact(ACCOUNT, Identity("telegram", str(7000 + n)), None, utcnow())
        campaign = await create_campaign(
            store,
            client.server.app[CAMPAIGNS],
            account_id=ACCOUNT,
            name="Through sales",
            channel="telegram",
            text="Hello from sales",
            inbox_id=sales.id,
        )
        assert (await store.campaigns.get_campaign(ACCOUNT, campaign.id)).inbox_id == sales.id  # type: ignore[union-attr]

        async def all_sent() -> bool:
            return len(second_bot.sent("sendMessage")) >= 3

        await wait_for(all_sent, timeout=30)
        sent = second_bot.sent("sendMessage")
        assert sorted(str(m["chat_id"]) for m in sent) == ["7000", "7001", "7002"]
        assert {m["text"] for m in sent} == {"Hello from sales"}
        assert bot_api.sent("sendMessage") == []  # the account's first bot sent nothing
        threads = await raw_database_of(store).threads.find({}).to_list()
        assert len(threads) == 3 and {t.get("inbox_id") for t in threads} == {sales.id}


async def test_an_inbox_of_another_account_channel_or_disabled_is_refused(
    embedded: EmbeddedMongo, db_name: str, bot_api: FakeBotAPI, second_bot: FakeBotAPI
) -> None:
    async with operator_client(_settings(embedded, db_name, bot_api, second_bot)) as client:
        store = client.server.app[STORE]
        await create_account(store, "shop2", "Shop two", None)
        theirs = await _inbox(store, "shop2", second_bot, "Their bot")
        mine = await _inbox(store, ACCOUNT, second_bot, "Mine")
        asked = {"account_id": ACCOUNT, "name": "x", "text": "hi"}
        with pytest.raises(CampaignRefused, match="no telegram inbox"):
            await create_campaign(store, None, channel="telegram", inbox_id=theirs.id, **asked)
        with pytest.raises(CampaignRefused, match="no webchat inbox"):  # a Telegram inbox for a web chat campaign
            await create_campaign(store, None, channel="webchat", inbox_id=mine.id, **asked)
        await store.inboxes.update_inbox(ACCOUNT, mine.id, {}, disabled=True)
        with pytest.raises(CampaignRefused, match="disabled"):
            await create_campaign(store, None, channel="telegram", inbox_id=mine.id, **asked)
        # shop2's own inbox is its to use
        ok = await create_campaign(
            store, None, channel="telegram", inbox_id=theirs.id, **{**asked, "account_id": "shop2"}
        )
        assert ok.inbox_id == theirs.id
        assert [c.name for c in await store.campaigns.list_campaigns(ACCOUNT)] == []


async def test_the_console_form_offers_the_accounts_inboxes_and_refuses_anothers(
    embedded: EmbeddedMongo, db_name: str, bot_api: FakeBotAPI, second_bot: FakeBotAPI
) -> None:
    async with operator_client(_settings(embedded, db_name, bot_api, second_bot)) as client:
        store = client.server.app[STORE]
        csrf = await admin_of(client, "default", "ada")
        page = await (await client.get("/admin/campaigns")).text()
        assert 'id="campaign-inbox"' not in page  # no extra inbox: no choice to make
        mine = await _inbox(store, "default", second_bot, "Sales bot")
        await create_account(store, "shop2", "Shop two", None)
        theirs = await _inbox(store, "shop2", second_bot, "Their bot")
        page = await (await client.get("/admin/campaigns")).text()
        assert 'id="campaign-inbox"' in page and "Sales bot" in page and "Their bot" not in page

        form = {**FORM, "channel": "telegram", "csrf_token": csrf}
        refused = await client.post("/admin/campaigns", data={**form, "inbox": theirs.id})
        assert refused.status == 400 and "no telegram inbox" in await refused.text()
        assert await store.campaigns.list_campaigns("default") == []
        created = await client.post("/admin/campaigns", data={**form, "inbox": mine.id}, allow_redirects=False)
        assert created.status == 303
        [campaign] = await store.campaigns.list_campaigns("default")
        assert campaign.inbox_id == mine.id
        listing = await (await client.get("/admin/campaigns")).text()
        assert '<span class="campaign-inbox">(Sales bot)</span>' in listing  # the list says which inbox


async def test_a_whatsapp_campaign_through_a_second_number_uses_that_numbers_templates(
    embedded: EmbeddedMongo, db_name: str, graph_api: FakeGraphAPI
) -> None:
    second = FakeGraphAPI(token="EAAG-second-number", first_id=2000)
    await second.start()
    try:
        settings = channel_settings(
            embedded.uri,
            db_name,
            graph_api=graph_api.url,
            campaigns={"rate": 50, "poll_interval": 0.1},
            egress={"allowed_destinations": ", ".join(f.url.removeprefix("http://") for f in (graph_api, second))},
        )
        async with operator_client(settings) as client:
            store = client.server.app[STORE]
            config = {
                "phone_number_id": "1002",
                "access_token": second.token,
                "app_secret": "second-secret",
                "verify_token": "v2",
                "api_base": second.url,
                "templates": {"welcome_back": {"language": "en_US", "parameters": ["name"]}},
            }
            number = await store.inboxes.create_inbox(
                ACCOUNT, "whatsapp", "Riga number", config, utcnow(), "whatsapp:1002"
            )
            assert number is not None
            await store.contacts.find_or_create_contact(ACCOUNT, Identity("whatsapp", "37120000001"), None, utcnow())
            asked = {"account_id": ACCOUNT, "name": "Back", "channel": "whatsapp", "text": "", "inbox_id": number.id}
            with pytest.raises(CampaignRefused, match="no template 'order_update'"):  # the first number's only
                await create_campaign(
                    store, client.server.app[CAMPAIGNS], **asked, template="order_update", parameters=["Ann", "A-1"]
                )
            await create_campaign(
                store, client.server.app[CAMPAIGNS], **asked, template="welcome_back", parameters=["Ann"]
            )

            async def sent() -> bool:
                return len(second.sent()) >= 1

            await wait_for(sent, timeout=30)
            [request] = second.requests
            assert request.path.endswith("/1002/messages") and request.authorization == f"Bearer {second.token}"
            assert request.body["template"]["name"] == "welcome_back" and request.body["to"] == "37120000001"
            assert graph_api.requests == []  # the account's first number sent nothing
    finally:
        await second.stop()


SALES = "sales@beta.example"


@pytest.fixture
async def smtp_sink() -> AsyncIterator[SmtpSink]:
    sink = SmtpSink()
    await sink.start()
    yield sink
    await sink.stop()


def _mail_settings(
    embedded: EmbeddedMongo, db_name: str, sink: SmtpSink, public_url: str = "https://router.example", **email: Any
) -> Any:
    """An install without a mailbox of its own that serves accounts' mailboxes (and its listener);
    its unsubscribe links at ``public_url`` (the console's logins must come from there too)."""
    return make_settings(
        embedded.uri,
        db_name,
        email={"for_accounts": True, "listen_port": free_port(), "poll_interval": 0.2, **email},
        campaigns={"rate": 50, "poll_interval": 0.1},
        server={"public_url": public_url},
        egress={"allowed_destinations": f"127.0.0.1:{sink.port}"},
    )


async def _sales_mailbox(store: Repositories, sink: SmtpSink, account: str = "shop2") -> Inbox:
    config = {
        "address": SALES,
        "display_name": "Beta Sales",
        "smtp_host": "127.0.0.1",
        "smtp_port": sink.port,
        "smtp_security": "none",
    }
    inbox = await store.inboxes.create_inbox(account, "email", "Sales", config, utcnow(), f"email:{SALES}")
    assert inbox is not None
    # the account has proven the domain its own, so the listener takes its replies (test_email_domains.py)
    assert await store.mail_domains.mark_verified(account, SALES.rpartition("@")[2], utcnow())
    return inbox


async def test_an_email_campaign_goes_out_from_a_mailbox_inbox_and_replies_land_in_its_threads(
    embedded: EmbeddedMongo, db_name: str, smtp_sink: SmtpSink
) -> None:
    """An account whose only mailbox is an extra inbox (the install has none) starts e-mail
    conversations through it: from its address, through its SMTP server, threads in that inbox."""
    settings = _mail_settings(embedded, db_name, smtp_sink)
    async with operator_client(settings) as client:
        store = client.server.app[STORE]
        await create_account(store, "shop2", "Shop two", None)
        sales = await _sales_mailbox(store, smtp_sink)
        for address in ("ann@mail.example", "bob@mail.example"):
            await store.contacts.find_or_create_contact("shop2", Identity("email", address), None, utcnow())
        await store.contacts.find_or_create_contact("shop2", Identity("telegram", "7001"), None, utcnow())
        asked = {"account_id": "shop2", "name": "Spring", "channel": "email", "text": "Spring sale: -20%"}
        campaign = await create_campaign(
            store, client.server.app[CAMPAIGNS], **asked, subject="Spring sale", inbox_id=sales.id
        )

        async def all_sent() -> bool:
            return len(smtp_sink.received) >= 2

        await wait_for(all_sent, timeout=30)
        assert sorted(r for rcpts, _, _ in smtp_sink.received for r in rcpts) == [
            "ann@mail.example",
            "bob@mail.example",
        ]
        for _, sent, _ in smtp_sink.received:
            assert sent["From"].addresses[0].addr_spec == SALES and sent["Subject"].startswith("Spring sale [#")
            assert sent["List-Unsubscribe"].strip().startswith("<https://router.example/unsubscribe/")
        threads = await raw_database_of(store).threads.find({}).to_list()
        assert len(threads) == 2 and {(t["account_id"], t.get("inbox_id")) for t in threads} == {("shop2", sales.id)}

        # Ann's answer to the mailbox finds the campaign's conversation
        [ann_mail] = [m for rcpts, m, _ in smtp_sink.received if rcpts == ["ann@mail.example"]]
        raw, _ = mail(
            "ann@mail.example",
            f"Re: {ann_mail['Subject']}",
            "Yes please",
            to=SALES,
            in_reply_to=ann_mail["Message-ID"].strip("<>"),
        )
        port = settings.section(EmailSettings).listen_port
        await aiosmtplib.send(raw, sender="ann@mail.example", recipients=[SALES], hostname="127.0.0.1", port=port)
        [ann_thread] = [t for t in threads if await _contact_address(store, t["contact_id"]) == "ann@mail.example"]

        async def answered() -> bool:
            return await raw_database_of(store).messages.count_documents({"thread_id": ann_thread["_id"]}) >= 2

        await wait_for(answered, timeout=30)
        assert await raw_database_of(store).threads.count_documents({}) == 2  # no new conversation
        report = await store.campaigns.get_campaign("shop2", campaign.id)
        assert report is not None and report.inbox_id == sales.id


async def _contact_address(store: Repositories, contact_id: str) -> str:
    doc = await raw_database_of(store).contacts.find_one({"_id": contact_id})
    return str(((doc or {}).get("identities") or [{}])[0].get("address", ""))


async def test_without_a_mailbox_of_its_own_an_email_campaign_uses_the_accounts_only_one_or_asks(
    embedded: EmbeddedMongo, db_name: str, smtp_sink: SmtpSink
) -> None:
    async with operator_client(_mail_settings(embedded, db_name, smtp_sink)) as client:
        store, sender = client.server.app[STORE], client.server.app[CAMPAIGNS]
        await create_account(store, "shop2", "Shop two", None)
        asked = {"account_id": "shop2", "name": "x", "channel": "email", "text": "hi", "subject": "Hi"}
        with pytest.raises(CampaignRefused, match="no mailbox to send from"):
            await create_campaign(store, sender, **asked)
        sales = await _sales_mailbox(store, smtp_sink)
        assert (
            await create_campaign(store, sender, **asked, send_at=utcnow() + timedelta(days=1))
        ).inbox_id == sales.id
        await store.inboxes.create_inbox(
            "shop2", "email", "Help", {"address": "help@beta.example"}, utcnow(), "email:help@beta.example"
        )
        with pytest.raises(CampaignRefused, match="choose one of its mailboxes"):
            await create_campaign(store, sender, **asked)
        # another account's mailbox is refused as a stranger's
        await create_account(store, "shop3", "Shop three", None)
        with pytest.raises(CampaignRefused, match="no email inbox"):
            await create_campaign(store, sender, **{**asked, "account_id": "shop3"}, inbox_id=sales.id)


async def test_an_account_s_admin_starts_an_email_campaign_from_its_mailbox_in_the_console(
    embedded: EmbeddedMongo, db_name: str, smtp_sink: SmtpSink
) -> None:
    async with operator_client(_mail_settings(embedded, db_name, smtp_sink, public_url="")) as client:
        store = client.server.app[STORE]
        csrf = await admin_of(client, "shop2", "ada")
        form = {**FORM, "channel": "email", "subject": "Hello", "csrf_token": csrf, "send_at": "2099-01-01"}
        refused = await client.post("/admin/campaigns", data=form)
        assert refused.status == 400 and "no mailbox to send from" in await refused.text()
        sales = await _sales_mailbox(store, smtp_sink)
        page = await (await client.get("/admin/campaigns")).text()
        assert f'<option value="{sales.id}" data-channel="email"' in page  # offered among the inboxes
        # the first inbox's option names the mailbox it sends from (the install has none of its own)
        assert "The channel&#39;s first inbox (e-mail: Sales, the account&#39;s only mailbox)" in page
        created = await client.post("/admin/campaigns", data=form, allow_redirects=False)
        assert created.status == 303
        [campaign] = await store.campaigns.list_campaigns("shop2")
        assert campaign.inbox_id == sales.id and campaign.channel == "email"

        # with a second mailbox the first inbox is none the form can send from by itself: it says so
        config = {"address": "help@beta.example", "smtp_host": "127.0.0.1", "smtp_port": smtp_sink.port}
        help_desk = await store.inboxes.create_inbox(
            "shop2", "email", "Help", config, utcnow(), "email:help@beta.example"
        )
        assert help_desk is not None
        page = await (await client.get("/admin/campaigns")).text()
        assert "The channel&#39;s first inbox (not for e-mail: choose one of the mailboxes)" in page
        assert "the account&#39;s only mailbox" not in page


async def test_an_sms_campaign_through_an_accounts_twilio_number_goes_out_from_that_number(
    embedded: EmbeddedMongo, db_name: str
) -> None:
    """The account's own Twilio number (an inbox, its own Twilio account): every text of the
    campaign goes out from it, with its credentials, and nothing from the install's number."""
    install, own = FakeTwilio(), FakeTwilio("AC" + "c" * 32, "token-of-the-shop-line")
    async with running(install, own):
        allowed = ", ".join(f.url.removeprefix("http://") for f in (install, own))
        settings = sms_settings(
            embedded.uri,
            db_name,
            install.url,
            campaigns={"rate": 50, "poll_interval": 0.1},
            egress={"allowed_destinations": allowed},
        )
        async with operator_client(settings) as client:
            store = client.server.app[STORE]
            config = {
                "account_sid": own.account_sid,
                "auth_token": own.auth_token,
                "from_number": "+14155550299",
                "api_base": own.url,
            }
            line = await store.inboxes.create_inbox(ACCOUNT, "sms", "Shop line", config, utcnow(), "sms:+14155550299")
            assert line is not None
            for n in range(3):
                await store.contacts.find_or_create_contact(
                    ACCOUNT, Identity("sms", f"+1415555{7000 + n}"), None, utcnow()
                )
            await create_campaign(
                store,
                client.server.app[CAMPAIGNS],
                account_id=ACCOUNT,
                name="From the line",
                channel="sms",
                text="Sale on Friday",
                inbox_id=line.id,
            )

            async def all_sent() -> bool:
                return len(own.sent) >= 3

            await wait_for(all_sent, timeout=30)
            assert sorted(m["To"] for m in own.sent) == ["+14155557000", "+14155557001", "+14155557002"]
            assert {(m["From"], m["Body"]) for m in own.sent} == {("+14155550299", "Sale on Friday")}
            assert install.sent == []
            threads = await raw_database_of(store).threads.find({}).to_list()
            assert len(threads) == 3 and {t.get("inbox_id") for t in threads} == {line.id}
