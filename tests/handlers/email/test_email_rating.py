"""The rating question by e-mail: signed single-use links to the rating page, in the customer's
language, and never usable for another account's conversation."""

from __future__ import annotations

import dataclasses
import re
from typing import Any
from urllib.parse import urlparse

import pytest
from aiohttp.test_utils import TestClient

from bot.keys import ADAPTERS, SATISFACTION, STORE
from conversations.embedded import EmbeddedMongo, free_port
from conversations.models import utcnow
from conversations.satisfaction import SatisfactionAsk
from tests import factories
from tests.handlers.conftest import email_settings
from tests.handlers.email.test_email import mail, sent_count, smtp_app  # noqa: F401 (a fixture)
from tests.handlers.test_satisfaction import ask_on, asks, resolve_only_thread
from tests.mailservers import SmtpSink
from tests.router.test_inbound import wait_for

PUBLIC = "https://support.shop.example"
LINK = re.compile(r"(https://support\.shop\.example/csat/\S+)")


@pytest.fixture
async def mail_app(embedded: EmbeddedMongo, db_name: str, smtp_sink: SmtpSink, start_client: Any) -> TestClient:
    settings = email_settings(embedded.uri, db_name, dovecot=None, user="", sink=smtp_sink, listen_port=free_port())
    settings = settings.with_sections({"server": dataclasses.replace(settings.server, public_url=PUBLIC)})
    client: TestClient = await start_client(settings)
    return client


async def rated_by_mail(client: TestClient, smtp_sink: SmtpSink) -> tuple[list[str], Any]:
    """A customer writes, an agent resolves; the links of the question mail, and the thread."""
    await ask_on(client)
    await client.server.app[ADAPTERS]["email"].ingest(mail("Anna <anna@client.example>", "Order 1042", "Where?")[0])  # type: ignore[attr-defined]
    thread = await resolve_only_thread(client, "email")
    await wait_for(lambda: sent_count(smtp_sink, 2), timeout=10)  # the queued notice, the question
    body = smtp_sink.received[-1][1].get_body(("plain",)).get_content()
    assert "Choose from 1 (poor) to 5 (excellent)" in body
    links = LINK.findall(body)
    assert len(links) == 5 and links[4].endswith("?rating=5")
    return [
        urlparse(link).path + (f"?{urlparse(link).query}" if urlparse(link).query else "") for link in links
    ], thread


async def test_an_email_link_rates_once_with_a_comment(mail_app: TestClient, smtp_sink: SmtpSink) -> None:
    paths, thread = await rated_by_mail(mail_app, smtp_sink)
    page = await mail_app.get(paths[3], headers={"Accept": "text/html"})
    assert page.status == 200
    html = await page.text()
    assert 'value="4" required checked' in html and "How would you rate the help you got?" in html
    path = paths[3].split("?")[0]
    answer = await mail_app.post(path, data={"rating": "4", "comment": "Fast, thank you"})
    assert answer.status == 200 and "Thank you for your rating!" in await answer.text()
    [ask] = await asks(mail_app, thread)
    assert (ask.rating, ask.comment, ask.channel) == (4, "Fast, thank you", "email")

    again = await mail_app.post(path, data={"rating": "1"})  # single use
    assert again.status == 409 and "rated already" in await again.text()
    assert (await mail_app.get(paths[0])).status == 200
    assert "rated already" in await (await mail_app.get(paths[0])).text()
    assert [a.rating for a in await asks(mail_app, thread)] == [4]


async def test_bad_answers_get_a_clear_400_and_forged_links_a_404(mail_app: TestClient, smtp_sink: SmtpSink) -> None:
    paths, thread = await rated_by_mail(mail_app, smtp_sink)
    path = paths[0].split("?")[0]
    for data in ({"rating": "6"}, {"rating": "x"}, {}, {"rating": "3", "comment": "x" * 2001}):
        assert (await mail_app.post(path, data=data)).status == 400
    token = path.rsplit("/", 1)[1]
    account, ask_id, signature = token.split(".")
    forged = [f"{account}.{ask_id}.{'0' * 32}", f"{account}.{ask_id}", "nonsense", f"{account}.{ask_id}x.{signature}"]
    for bad in forged:
        assert (await mail_app.get(f"/csat/{bad}")).status == 404
        assert (await mail_app.post(f"/csat/{bad}", data={"rating": "5"})).status == 404
    assert [a.rating for a in await asks(mail_app, thread)] == [None]


async def test_a_link_of_one_account_cannot_rate_another_accounts_conversation(
    mail_app: TestClient, smtp_sink: SmtpSink
) -> None:
    paths, _ = await rated_by_mail(mail_app, smtp_sink)
    store = mail_app.server.app[STORE]
    await factories.account(store, "acme")
    theirs = SatisfactionAsk("sat_acme_1", "acme", "thr_acme", "cnt_acme", "email", utcnow())
    await store.satisfaction.record_ask(theirs)
    token = paths[0].split("?")[0].rsplit("/", 1)[1]
    account, _, signature = token.split(".")
    for bad in (
        f"{account}.{theirs.id}.{signature}",
        f"acme.{theirs.id}.{signature}",
        f"acme.{token.split('.')[1]}.{signature}",
    ):
        assert (await mail_app.post(f"/csat/{bad}", data={"rating": "1"})).status == 404
    # acme's own genuine link works for acme's question only
    links = mail_app.server.app[SATISFACTION].links
    assert links is not None
    assert (await mail_app.post(urlparse(links.url(theirs)).path, data={"rating": "2"})).status == 200
    assert (await store.satisfaction.get_ask("acme", theirs.id)).rating == 2  # type: ignore[union-attr]
    assert (await store.satisfaction.get_ask("default", theirs.id)) is None


async def test_the_rating_page_speaks_the_conversations_language(mail_app: TestClient) -> None:
    store = mail_app.server.app[STORE]
    ask = SatisfactionAsk("sat_lv", "default", "thr_lv", "cnt_lv", "email", utcnow(), language="lv")
    await store.satisfaction.record_ask(ask)
    links = mail_app.server.app[SATISFACTION].links
    assert links is not None
    path = urlparse(links.url(ask)).path
    html = await (await mail_app.get(path)).text()
    assert 'lang="lv"' in html and "Kā jūs novērtētu saņemto palīdzību?" in html and "Nosūtīt vērtējumu" in html
    done = await (await mail_app.post(path, data={"rating": "5"})).text()
    assert "Paldies par vērtējumu!" in done


async def test_without_a_public_url_no_mail_question_is_sent_but_it_is_counted(
    smtp_app: TestClient, smtp_sink: SmtpSink
) -> None:
    await ask_on(smtp_app)
    await smtp_app.server.app[ADAPTERS]["email"].ingest(mail("bo@client.example", "Hello", "Hi")[0])  # type: ignore[attr-defined]
    thread = await resolve_only_thread(smtp_app, "email")
    await wait_for(lambda: sent_count(smtp_sink, 1), timeout=10)  # the queued notice only
    [ask] = await asks(smtp_app, thread)
    assert ask.skipped == "no_public_url"
    assert not any("/csat/" in m.get_body(("plain",)).get_content() for _, m, _ in smtp_sink.received)
