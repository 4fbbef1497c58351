"""Mailbox inboxes: two accounts on one install each add two mailboxes of their own (one read over
IMAP from Dovecot, one fed by the router's SMTP listener), each answering through an SMTP server of
its own, beside the install's own mailbox. The same mail to all five is five conversations, each in
the account and inbox of the mailbox it came to, each answered from that mailbox's address through
that mailbox's server; an address that is no one's is refused with 550 and nothing is stored."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import aiosmtplib
import pytest
from aiohttp.test_utils import TestClient

from bot.handlers.email.adapter import EmailAdapter
from bot.handlers.kit.protocol import PermanentSendError
from bot.keys import ADAPTERS, STORE
from bot.web.api.kit import issue_token
from conversations.embedded import EmbeddedMongo, free_port
from conversations.models import utcnow
from conversations.traffic import Identity, Outbound
from tests.conftest import TEST_API_TOKEN, make_settings, raw_database_of
from tests.handlers.conftest import OUR_ADDRESS, Mailbox
from tests.handlers.email.test_email import mail
from tests.mailservers import IMAP_PASSWORD, Dovecot, SmtpSink
from tests.router.test_inbound import wait_for

INSTALL = {"Authorization": f"Bearer {TEST_API_TOKEN}"}
CUSTOMER = "ivan@mail.example"
# account -> its two mailboxes: (address, read over IMAP?)
MAILBOXES = {
    "default": (("sales@alpha.example", True), ("help@alpha.example", False)),
    "shop2": (("sales@beta.example", True), ("help@beta.example", False)),
}
ADDRESSES = [address for boxes in MAILBOXES.values() for address, _ in boxes]


@pytest.fixture
async def sinks() -> AsyncIterator[dict[str, SmtpSink]]:
    """An SMTP server per mailbox (the install's own too): each reply must leave through its own."""
    made = {address: SmtpSink() for address in [OUR_ADDRESS, *ADDRESSES]}
    for sink in made.values():
        await sink.start()
    yield made
    for sink in made.values():
        await sink.stop()


class Install:
    def __init__(self, client: TestClient, headers: dict[str, dict[str, str]], listen_port: int) -> None:
        self.client = client
        self.headers = headers
        self.listen_port = listen_port
        self.store = client.server.app[STORE]
        adapter = client.server.app[ADAPTERS]["email"]
        assert isinstance(adapter, EmailAdapter)
        self.adapter = adapter

    async def add(self, account: str, settings: dict[str, Any], name: str = "mailbox") -> Any:
        body = {"channel": "email", "name": name, "settings": settings}
        return await self.client.post(f"/api/accounts/{account}/inboxes", json=body, headers=self.headers[account])

    async def verified(self, account: str, domain: str) -> None:
        """The account has proven ``domain`` its own, so the listener feeds its mailboxes there
        (the proof itself, a DNS TXT record, is test_email_domains.py's)."""
        assert await self.store.mail_domains.mark_verified(account, domain, utcnow())


async def _started(
    embedded: EmbeddedMongo, db_name: str, start_client: Any, dovecot: Dovecot, sinks: dict[str, SmtpSink]
) -> Install:
    listen = free_port()
    allowed = ", ".join([f"127.0.0.1:{dovecot.port}", *(f"127.0.0.1:{sink.port}" for sink in sinks.values())])
    email = {
        "address": OUR_ADDRESS,
        "display_name": "Shop Support",
        "smtp_host": "127.0.0.1",
        "smtp_port": sinks[OUR_ADDRESS].port,
        "smtp_security": "none",
        "poll_interval": 0.2,
        "listen_port": listen,
    }
    settings = make_settings(embedded.uri, db_name, email=email, egress={"allowed_destinations": allowed})
    client: TestClient = await start_client(settings)
    store = client.server.app[STORE]
    await store.accounts.ensure_account("shop2", "Shop two", utcnow())
    shop2 = {"Authorization": f"Bearer {await issue_token(store, 'shop2', 'ops', ['read', 'write'], 'test')}"}
    return Install(client, {"default": INSTALL, "shop2": shop2}, listen)


def _mailbox(address: str, sink: SmtpSink, dovecot: Dovecot | None, user: str = "") -> dict[str, Any]:
    settings: dict[str, Any] = {
        "address": address,
        "display_name": f"Desk {address}",
        "smtp_host": "127.0.0.1",
        "smtp_port": sink.port,
        "smtp_security": "none",
        "smtp_password": f"smtp-secret-of-{address}",
    }
    if dovecot is not None:
        settings.update(
            imap_host="127.0.0.1",
            imap_port=str(dovecot.port),  # digits are taken as well as a number
            imap_security="none",
            imap_user=user,
            imap_password=IMAP_PASSWORD,
        )
    return settings


def _user(address: str) -> str:
    return "box-" + address.replace("@", "-at-")


async def _listener_send(install: Install, raw: bytes, recipients: list[str]) -> Any:
    return await aiosmtplib.send(
        raw, sender=CUSTOMER, recipients=recipients, hostname="127.0.0.1", port=install.listen_port
    )


async def test_each_mailbox_of_each_account_is_its_own_inbox(
    embedded: EmbeddedMongo, db_name: str, start_client: Any, dovecot: Dovecot, sinks: dict[str, SmtpSink]
) -> None:
    install = await _started(embedded, db_name, start_client, dovecot, sinks)
    inbox_of: dict[str, str] = {}
    for account, boxes in MAILBOXES.items():
        for address, imap in boxes:
            settings = _mailbox(address, sinks[address], dovecot if imap else None, _user(address))
            answer = await install.add(account, settings, name=address)
            assert answer.status == 201, await answer.text()
            shown = await answer.json()
            assert shown["settings"]["address"] == address and shown["webhook_url"] == ""
            assert shown["secrets"] == {"smtp_password": True, **({"imap_password": True} if imap else {})}
            assert "smtp-secret-of" not in json.dumps(shown) and IMAP_PASSWORD not in json.dumps(
                shown
            )  # never shown back
            inbox_of[address] = shown["id"]
            await install.verified(account, address.rpartition("@")[2])
    raw_inboxes = str(await raw_database_of(install.store).inboxes.find({}).to_list())
    assert "smtp-secret-of" not in raw_inboxes and IMAP_PASSWORD not in raw_inboxes  # sealed at rest
    listed = await (await install.client.get("/api/accounts/shop2/inboxes", headers=install.headers["shop2"])).json()
    assert sorted(i["name"] for i in listed["items"]) == ["help@beta.example", "sales@beta.example"]
    assert "smtp-secret-of" not in json.dumps(listed)

    # one mail, to all five mailboxes: the IMAP ones find it in their folder (readers picked up by
    # the inboxes' refresh, within ten seconds), the others are its SMTP recipients
    raw, _ = mail(f"Иван <{CUSTOMER}>", "Where is my order?", "Hello", to=", ".join([OUR_ADDRESS, *ADDRESSES]))
    for boxes in MAILBOXES.values():
        await Mailbox(dovecot, _user(boxes[0][0])).deliver(raw)
    _, answer = await _listener_send(install, raw, [OUR_ADDRESS, "Help@Alpha.example", "help@beta.example"])
    assert answer.startswith("2.0.0 recorded")

    async def all_answered() -> bool:
        return all(len(sink.received) >= 1 for sink in sinks.values())

    await wait_for(all_answered, timeout=30)
    database = raw_database_of(install.store)
    threads = await database.threads.find({}).to_list()
    assert sorted((t["account_id"], t.get("inbox_id") or "") for t in threads) == sorted(
        [("default", "")] + [(account, inbox_of[a]) for account, boxes in MAILBOXES.items() for a, _ in boxes]
    )
    inbox_by_thread = {t["_id"]: t.get("inbox_id") or "" for t in threads}
    inbound = await database.messages.find({"direction": "in"}).to_list()
    per_inbox = Counter((m["account_id"], inbox_by_thread[m["thread_id"]]) for m in inbound)
    assert per_inbox == Counter(
        {("default", ""): 1, **{(acc, inbox_of[a]): 1 for acc, b in MAILBOXES.items() for a, _ in b}}
    )
    for address, sink in sinks.items():  # each answer from its mailbox, through its mailbox's server
        [(recipients, reply, _)] = sink.received
        assert recipients == [CUSTOMER] and reply["From"].addresses[0].addr_spec == address
        local, _, domain = address.partition("@")
        assert reply["Reply-To"].addresses[0].addr_spec.startswith(f"{local}+")
        assert reply["Reply-To"].addresses[0].addr_spec.endswith(f"@{domain}")
    assert await Mailbox(dovecot, _user("sales@alpha.example")).unseen() == 0  # read, and marked seen

    # the customer answers alpha's sales mailbox's reply: to it, it continues that thread; sent to
    # alpha's help mailbox instead, its Message-IDs and token find nothing there: a new thread
    sales_reply = sinks["sales@alpha.example"].received[0][1]
    sales_thread = next(t["_id"] for t in threads if t.get("inbox_id") == inbox_of["sales@alpha.example"])
    answer_raw, _ = mail(
        CUSTOMER,
        f"Re: {sales_reply['Subject']}",
        "Any news?",
        in_reply_to=sales_reply["Message-ID"][1:-1],
        references=[sales_reply["Message-ID"][1:-1]],
        to="help@alpha.example",
    )
    await _listener_send(install, answer_raw, ["help@alpha.example"])
    await Mailbox(dovecot, _user("sales@alpha.example")).deliver(answer_raw)

    async def both_recorded() -> bool:
        return await database.messages.count_documents({"direction": "in", "text": "Any news?"}) == 2

    await wait_for(both_recorded, timeout=15)
    answers = await database.messages.find({"direction": "in", "text": "Any news?"}).to_list()
    by_inbox = {inbox_by_thread.get(m["thread_id"], "new"): m["thread_id"] for m in answers}
    assert by_inbox[inbox_of["sales@alpha.example"]] == sales_thread
    [moved] = [thread for inbox, thread in by_inbox.items() if inbox != inbox_of["sales@alpha.example"]]
    fresh = await database.threads.find_one({"_id": moved})
    assert fresh["inbox_id"] == inbox_of["help@alpha.example"] and fresh["account_id"] == "default"


async def test_an_address_that_is_no_mailbox_s_is_refused_with_550_and_nothing_is_stored(
    embedded: EmbeddedMongo, db_name: str, start_client: Any, dovecot: Dovecot, sinks: dict[str, SmtpSink]
) -> None:
    install = await _started(embedded, db_name, start_client, dovecot, sinks)
    help_beta = await install.add("shop2", _mailbox("help@beta.example", sinks["help@beta.example"], None))
    assert help_beta.status == 201
    await install.verified("shop2", "beta.example")
    off = (await (await install.add("default", _mailbox("help@alpha.example", sinks[OUR_ADDRESS], None))).json())["id"]
    change = {"disabled": True}
    assert (
        await install.client.patch(f"/api/accounts/default/inboxes/{off}", json=change, headers=INSTALL)
    ).status == 200
    raw, _ = mail(CUSTOMER, "Hello", "hi", to="nobody@beta.example")
    # no inbox's, not the install's domain; a disabled inbox's address
    for recipient in ("nobody@beta.example", "sales@gamma.example", "help@alpha.example"):
        with pytest.raises(aiosmtplib.SMTPRecipientsRefused) as refused:
            await _listener_send(install, raw, [recipient])
        assert [r.code for r in refused.value.recipients] == [550], recipient
    database = raw_database_of(install.store)
    assert await database.messages.count_documents({}) == 0 and await database.threads.count_documents({}) == 0
    # with a known recipient beside an unknown one, only the known one's inbox takes the mail
    errors, answer = await _listener_send(install, raw, ["nobody@beta.example", "help+ab12cd34@beta.example"])
    assert answer.startswith("2.0.0 recorded") and errors["nobody@beta.example"].code == 550
    [thread] = await database.threads.find({}).to_list()
    assert thread["account_id"] == "shop2" and thread["inbox_id"] == (await help_beta.json())["id"]


async def test_an_account_manages_only_its_own_mailboxes_and_an_address_is_one_mailbox_s(
    embedded: EmbeddedMongo, db_name: str, start_client: Any, dovecot: Dovecot, sinks: dict[str, SmtpSink]
) -> None:
    install = await _started(embedded, db_name, start_client, dovecot, sinks)
    shop2 = install.headers["shop2"]
    created = await install.add("default", _mailbox("sales@alpha.example", sinks[OUR_ADDRESS], dovecot, "x"))
    assert created.status == 201
    inbox = (await created.json())["id"]
    client = install.client
    assert (await client.get("/api/accounts/default/inboxes", headers=shop2)).status == 404
    body = {"channel": "email", "name": "mine", "settings": _mailbox("x@beta.example", sinks[OUR_ADDRESS], None)}
    assert (await client.post("/api/accounts/default/inboxes", json=body, headers=shop2)).status == 404
    assert (await client.patch(f"/api/accounts/shop2/inboxes/{inbox}", json={"name": "x"}, headers=shop2)).status == 404
    assert (
        await client.patch(f"/api/accounts/default/inboxes/{inbox}", json={"name": "x"}, headers=shop2)
    ).status == 404
    # an address is one mailbox's, whatever its case; the install's own is no inbox's, and its
    # domain (which its SMTP listener takes) is no other account's; nor is a domain another
    # account has a mailbox in (mail to any address there would reach this account otherwise)
    for address, error in (
        (OUR_ADDRESS, "inbox_taken"),
        ("billing@Shop.example", "inbox_taken"),
        ("Sales@Alpha.example", "domain_taken"),
        ("billing@alpha.example", "domain_taken"),
    ):
        taken = await install.add("shop2", _mailbox(address, sinks[OUR_ADDRESS], None))
        assert taken.status == 409 and (await taken.json())["error"] == error, address
    assert (await install.add("default", _mailbox("billing@alpha.example", sinks[OUR_ADDRESS], None))).status == 201
    change = {"settings": {"address": OUR_ADDRESS}}
    assert (await client.patch(f"/api/accounts/default/inboxes/{inbox}", json=change, headers=INSTALL)).status == 409
    mine = await install.add("default", _mailbox("billing@shop.example", sinks[OUR_ADDRESS], None))
    assert mine.status == 201  # the install's own account may have more mailboxes in its domain
    assert await install.store.inboxes.list_inboxes("shop2") == []


async def test_a_mailbox_s_servers_pass_the_egress_guard(
    embedded: EmbeddedMongo, db_name: str, start_client: Any, dovecot: Dovecot, sinks: dict[str, SmtpSink]
) -> None:
    install = await _started(embedded, db_name, start_client, dovecot, sinks)
    good = _mailbox("sales@beta.example", sinks["sales@beta.example"], None)
    # a private or loopback address the operator did not allow (with this port) is refused when saved
    for change in ({"smtp_host": "10.0.0.5"}, {"smtp_port": 2525}, {"imap_host": "169.254.169.254"}):
        answer = await install.add("shop2", {**good, **change})
        assert answer.status == 400, (change, await answer.text())
        assert (await answer.json())["error"] == "host_not_allowed"
    for change in (
        {"address": "sales+x@beta.example"},
        {"imap_port": 70000},
        {"smtp_port": "65536"},
        {"smtp_security": "ssl"},
    ):
        answer = await install.add("shop2", {**good, **change})
        assert answer.status == 400, (change, await answer.text())
    created = await install.add("shop2", good)
    assert created.status == 201
    inbox = (await created.json())["id"]
    moved = {"settings": {"smtp_port": 25}}
    patched = await install.client.patch(
        f"/api/accounts/shop2/inboxes/{inbox}", json=moved, headers=install.headers["shop2"]
    )
    assert patched.status == 400 and (await patched.json())["error"] == "host_not_allowed"
    # a name is checked when it is connected to: localhost is loopback, and not allowed
    by_name = {"settings": {"smtp_host": "localhost"}}
    patched = await install.client.patch(
        f"/api/accounts/shop2/inboxes/{inbox}", json=by_name, headers=install.headers["shop2"]
    )
    assert patched.status == 200
    outbound = Outbound(
        "shop2",
        "email",
        "thr_x",
        "msg_x",
        Identity("email", CUSTOMER),
        "hi",
        meta={"sender_kind": "agent"},
        inbox_id=inbox,
    )
    with pytest.raises(PermanentSendError, match="not allowed"):
        await install.adapter.send(outbound)
    assert sinks["sales@beta.example"].received == []
    # another account's mailbox is not this account's to send from
    with pytest.raises(PermanentSendError):
        await install.adapter.send(
            Outbound("default", "email", "thr_y", "msg_y", Identity("email", CUSTOMER), "hi", inbox_id=inbox)
        )


async def test_a_disabled_mailbox_is_read_no_more_and_an_enabled_one_again(
    embedded: EmbeddedMongo, db_name: str, start_client: Any, dovecot: Dovecot, sinks: dict[str, SmtpSink]
) -> None:
    install = await _started(embedded, db_name, start_client, dovecot, sinks)
    address = "sales@beta.example"
    box = Mailbox(dovecot, _user(address) + "-off")
    created = await install.add("shop2", _mailbox(address, sinks[address], dovecot, _user(address) + "-off"))
    inbox = (await created.json())["id"]
    mailboxes, ingest = install.adapter.mailboxes, install.adapter.ingest
    await mailboxes.refresh_readers(ingest)  # what the inboxes' refresh does every ten seconds
    assert list(mailboxes.readers) == [inbox]
    headers = install.headers["shop2"]
    off = await install.client.patch(f"/api/accounts/shop2/inboxes/{inbox}", json={"disabled": True}, headers=headers)
    assert off.status == 200
    await mailboxes.refresh_readers(ingest)
    assert mailboxes.readers == {}
    await box.deliver(mail(CUSTOMER, "Hello", "while off", to=address)[0])
    await asyncio.sleep(1)
    assert await box.unseen() == 1  # left for when the inbox is on again
    database = raw_database_of(install.store)
    assert await database.messages.count_documents({}) == 0
    on = await install.client.patch(f"/api/accounts/shop2/inboxes/{inbox}", json={"disabled": False}, headers=headers)
    assert on.status == 200
    await mailboxes.refresh_readers(ingest)

    async def read() -> bool:
        return await database.messages.count_documents({"direction": "in", "account_id": "shop2"}) == 1

    await wait_for(read, timeout=15)
    # an account disabled: its mailboxes' readers stop too
    await install.store.accounts.update_account("shop2", disabled=True)
    await mailboxes.refresh_readers(ingest)
    assert mailboxes.readers == {}


async def test_an_install_without_a_mailbox_of_its_own_serves_its_accounts_mailboxes(
    embedded: EmbeddedMongo, db_name: str, start_client: Any, sinks: dict[str, SmtpSink]
) -> None:
    listen, sink = free_port(), sinks["help@beta.example"]
    email = {"address": "", "for_accounts": True, "listen_port": listen, "poll_interval": 0.2}
    allowed = {"allowed_destinations": f"127.0.0.1:{sink.port}"}
    client: TestClient = await start_client(make_settings(embedded.uri, db_name, email=email, egress=allowed))
    store = client.server.app[STORE]
    await store.accounts.ensure_account("shop2", "Shop two", utcnow())
    body = {"channel": "email", "name": "Help", "settings": _mailbox("help@beta.example", sink, None)}
    created = await client.post("/api/accounts/shop2/inboxes", json=body, headers=INSTALL)
    assert created.status == 201, await created.text()
    assert await store.mail_domains.mark_verified("shop2", "beta.example", utcnow())
    raw, _ = mail(CUSTOMER, "Hello", "hi", to="help@beta.example")
    # no domain is the install's: only the inbox's address is taken
    with pytest.raises(aiosmtplib.SMTPRecipientsRefused):
        await aiosmtplib.send(raw, sender=CUSTOMER, recipients=[OUR_ADDRESS], hostname="127.0.0.1", port=listen)
    await aiosmtplib.send(raw, sender=CUSTOMER, recipients=["help@beta.example"], hostname="127.0.0.1", port=listen)
    await wait_for(lambda: _received(sink), timeout=15)
    [(recipients, reply, _)] = sink.received
    assert recipients == [CUSTOMER] and reply["From"].addresses[0].addr_spec == "help@beta.example"
    [thread] = await raw_database_of(store).threads.find({}).to_list()
    assert thread["account_id"] == "shop2" and thread["inbox_id"] == (await created.json())["id"]
    adapter = client.server.app[ADAPTERS]["email"]
    with pytest.raises(PermanentSendError, match="no e-mail set-up"):  # the install's account has no mailbox
        await adapter.send(Outbound("default", "email", "thr_z", "msg_z", Identity("email", CUSTOMER), "hi"))


async def _received(sink: SmtpSink) -> bool:
    return len(sink.received) >= 1


async def test_a_mailbox_s_imap_server_is_read_only_through_the_egress_guard(
    embedded: EmbeddedMongo, db_name: str, start_client: Any, dovecot: Dovecot, sinks: dict[str, SmtpSink]
) -> None:
    install = await _started(embedded, db_name, start_client, dovecot, sinks)
    address, user = "sales@beta.example", _user("sales@beta.example") + "-guarded"
    box = Mailbox(dovecot, user)
    await box.deliver(mail(CUSTOMER, "Hello", "through the guard?", to=address)[0])
    # "localhost" is the same Dovecot, but the operator allowed 127.0.0.1 by address, not this name
    settings = {**_mailbox(address, sinks[address], dovecot, user), "imap_host": "localhost"}
    created = await install.add("shop2", settings)
    assert created.status == 201  # a name is checked when it is connected to
    inbox = (await created.json())["id"]
    mailboxes, ingest = install.adapter.mailboxes, install.adapter.ingest
    await mailboxes.refresh_readers(ingest)
    await asyncio.sleep(1.5)
    database = raw_database_of(install.store)
    assert await box.unseen() == 1 and await database.messages.count_documents({}) == 0
    change = {"settings": {"imap_host": "127.0.0.1"}}
    headers = install.headers["shop2"]
    assert (
        await install.client.patch(f"/api/accounts/shop2/inboxes/{inbox}", json=change, headers=headers)
    ).status == 200
    await mailboxes.refresh_readers(ingest)  # its settings changed: its reader starts again with them

    async def read() -> bool:
        return await database.messages.count_documents({"direction": "in", "account_id": "shop2"}) == 1

    await wait_for(read, timeout=15)
    assert await box.unseen() == 0
