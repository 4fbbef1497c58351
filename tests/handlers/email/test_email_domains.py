"""Domain verification of listener-fed mailboxes: an account proves a mail domain its own with a
DNS TXT record (``omnirouter-verification=<token>``) before the SMTP listener gives it the
domain's mail. The domain's name servers are a small DNS server on 127.0.0.1 (``email.dns_servers``).
Unverified: 550 and nothing stored; a wrong token or no record: still unverified, the reason in
words; the right token: mail lands in the inbox, and the account's other addresses there need no
second proof; another account can neither verify nor see the inbox (404) nor take the verified
domain (409). Mailboxes of a store written by the earlier release are taken as verified. An address
another account claimed in the domain first is released when the owner verifies it: that mailbox
is disabled, says why, and the owner takes the address."""

from __future__ import annotations

from typing import Any

import aiosmtplib
import pytest
from aiohttp.test_utils import TestClient

from bot.handlers.email.domain_proof import name_servers
from bot.handlers.email.settings import name_server_list
from bot.keys import STORE
from bot.services.agents import add_agent
from bot.services.mail_domains import release_squatted
from bot.web.api.kit import issue_token
from conversations.agent_models import Role
from conversations.audit import AuditQuery
from conversations.embedded import EmbeddedMongo, free_port
from conversations.models import utcnow
from conversations.repositories import Repositories
from tests.conftest import make_settings, raw_database_of
from tests.fakes.dns_server import FakeDns
from tests.handlers.conftest import OUR_ADDRESS
from tests.handlers.email.test_email import mail
from tests.mailservers import SmtpSink
from tests.web.admin.inboxes_kit import PASSWORD, article
from tests.web.admin.test_accounts import Browser

CUSTOMER = "ivan@mail.example"
DOMAIN = "bigcorp.example"


class Install:
    """A router with its SMTP listener, the install's account ``default`` and ``shop2``."""

    def __init__(self, client: TestClient, listen: int, sink: SmtpSink, headers: dict[str, dict[str, str]]) -> None:
        self.client, self.listen, self.sink = client, listen, sink
        self.store: Repositories = client.server.app[STORE]
        self.headers = headers  # an account's own API token each (the install's token reaches every account)

    async def add(self, account: str, address: str) -> Any:
        settings = {"address": address, "smtp_host": "127.0.0.1", "smtp_port": self.sink.port, "smtp_security": "none"}
        body = {"channel": "email", "name": address, "settings": settings}
        return await self.client.post(f"/api/accounts/{account}/inboxes", json=body, headers=self.headers[account])

    async def verify(self, account: str, inbox_id: str, as_account: str | None = None) -> Any:
        path = f"/api/accounts/{account}/inboxes/{inbox_id}/verify"
        return await self.client.post(path, headers=self.headers[as_account or account])

    async def send(self, recipient: str) -> Any:
        raw, _ = mail(CUSTOMER, "Hello", "Do you ship to Riga?", to=recipient)
        return await aiosmtplib.send(
            raw, sender=CUSTOMER, recipients=[recipient], hostname="127.0.0.1", port=self.listen
        )


async def _started(
    embedded: EmbeddedMongo, db_name: str, start_client: Any, dns_server: FakeDns, sink: SmtpSink
) -> Install:
    listen = free_port()
    email = {"address": OUR_ADDRESS, "listen_port": listen, "poll_interval": 0.2, "dns_servers": dns_server.address}
    egress = {"allowed_destinations": f"127.0.0.1:{sink.port}"}
    client: TestClient = await start_client(make_settings(embedded.uri, db_name, email=email, egress=egress))
    store = client.server.app[STORE]
    await store.accounts.ensure_account("shop2", "Shop two", utcnow())
    headers = {
        account: {"Authorization": f"Bearer {await issue_token(store, account, 'ops', ['read', 'write'], 'test')}"}
        for account in ("default", "shop2")
    }
    return Install(client, listen, sink, headers)


async def _refused(install: Install, recipient: str) -> None:
    with pytest.raises(aiosmtplib.SMTPRecipientsRefused) as refused:
        await install.send(recipient)
    assert [r.code for r in refused.value.recipients] == [550], recipient


async def test_a_listener_fed_mailbox_receives_mail_only_once_its_domain_is_verified(
    embedded: EmbeddedMongo, db_name: str, start_client: Any, dns_server: FakeDns, sink: SmtpSink
) -> None:
    install = await _started(embedded, db_name, start_client, dns_server, sink)
    created = await install.add("shop2", f"sales@{DOMAIN}")
    assert created.status == 201, await created.text()
    shown = await created.json()
    proof = shown["verification"]
    assert proof["domain"] == DOMAIN and proof["verified"] is False and proof["record_name"] == DOMAIN
    assert proof["record"].startswith("omnirouter-verification=") and len(proof["record"]) > 40
    database = raw_database_of(install.store)

    # unverified: the listener answers as for an unknown address, and stores nothing
    await _refused(install, f"sales@{DOMAIN}")
    assert await database.messages.count_documents({}) == 0 and await database.threads.count_documents({}) == 0

    # the domain does not exist; then it has no record; then another token (say, an old one)
    outcomes = []
    for records in (None, ["v=spf1 -all"], ["omnirouter-verification=not-the-token"]):
        if records is not None:
            dns_server.txt[DOMAIN] = records
        answer = await install.verify("shop2", shown["id"])
        assert answer.status == 200, await answer.text()
        found = await answer.json()
        assert found["verified"] is False and found["reason"]
        outcomes.append(found["outcome"])
    assert outcomes == ["no_domain", "no_record", "wrong_token"]
    assert "another token" in found["reason"]
    await _refused(install, f"sales@{DOMAIN}")

    # the right token, beside other records: verified, and the mail lands in this inbox
    dns_server.txt[DOMAIN] = ["v=spf1 -all", proof["record"]]
    answer = await install.verify("shop2", shown["id"])
    assert answer.status == 200 and (await answer.json())["verified"] is True
    _, reply = await install.send(f"Sales+ab12cd34@{DOMAIN.upper()}")
    assert reply.startswith("2.0.0 recorded")
    [thread] = await database.threads.find({}).to_list()
    assert thread["account_id"] == "shop2" and thread["inbox_id"] == shown["id"]

    # another address of the account there needs no second proof
    dns_server.txt.clear()
    second = await install.add("shop2", f"help@{DOMAIN}")
    assert (await second.json())["verification"]["verified"] is True
    _, reply = await install.send(f"help@{DOMAIN}")
    assert reply.startswith("2.0.0 recorded")
    listed = await install.client.get("/api/accounts/shop2/inboxes", headers=install.headers["shop2"])
    assert all(item["verification"]["verified"] for item in (await listed.json())["items"])


async def test_another_account_can_neither_verify_nor_take_the_domain(
    embedded: EmbeddedMongo, db_name: str, start_client: Any, dns_server: FakeDns, sink: SmtpSink
) -> None:
    install = await _started(embedded, db_name, start_client, dns_server, sink)
    ours = await (await install.add("shop2", f"sales@{DOMAIN}")).json()
    # an unverified claim holds nothing: the domain's owner (here: default) can still claim it
    squat = await install.add("default", f"billing@{DOMAIN}")
    assert squat.status == 201
    theirs = await squat.json()
    assert theirs["verification"]["record"] != ours["verification"]["record"]  # a token per account

    # another account's admin: no such inbox (404), on the API and the same path of its own account
    assert (await install.verify("shop2", ours["id"], as_account="default")).status == 404
    assert (await install.verify("default", ours["id"])).status == 404
    assert (await install.verify("default", ours["id"], as_account="shop2")).status == 404

    # both tokens published: the first to verify holds the domain, the other is refused
    dns_server.txt[DOMAIN] = [ours["verification"]["record"], theirs["verification"]["record"]]
    assert (await (await install.verify("shop2", ours["id"])).json())["verified"] is True
    late = await install.verify("default", theirs["id"])
    assert late.status == 409 and (await late.json())["error"] == "domain_taken"
    await _refused(install, f"billing@{DOMAIN}")
    taken = await install.add("default", f"info@{DOMAIN}")
    assert taken.status == 409 and (await taken.json())["error"] == "domain_taken"
    # the install's own account in the install's own domain has nothing to verify
    mine = await (await install.add("default", "billing@shop.example")).json()
    assert "verification" not in mine
    assert (await install.verify("default", mine["id"])).status == 422


async def test_mailboxes_of_an_earlier_release_keep_receiving_mail(
    embedded: EmbeddedMongo, db_name: str, start_client: Any, dns_server: FakeDns, sink: SmtpSink
) -> None:
    install = await _started(embedded, db_name, start_client, dns_server, sink)
    # the earlier release stored a mailbox with no claim on its domain
    config = {"address": f"sales@{DOMAIN}", "smtp_host": "127.0.0.1", "smtp_port": sink.port, "smtp_security": "none"}
    old = await install.store.inboxes.create_inbox(
        "shop2", "email", "Old sales", config, utcnow(), f"email:sales@{DOMAIN}"
    )
    assert old is not None
    new = await (await install.add("shop2", "help@newcorp.example")).json()
    await install.store.ensure_indexes()  # what start-up does: the upgrade
    await install.store.ensure_indexes()  # and again at the next start: nothing more is taken
    assert await install.store.mail_domains.is_verified("shop2", DOMAIN)
    claim = await install.store.mail_domains.claim_of("shop2", DOMAIN)
    assert claim is not None and claim.how == "upgrade"
    assert not await install.store.mail_domains.is_verified("shop2", "newcorp.example")
    _, reply = await install.send(f"sales@{DOMAIN}")
    assert reply.startswith("2.0.0 recorded")
    await _refused(install, new["settings"]["address"])
    assert await raw_database_of(install.store).messages.count_documents({"direction": "in"}) == 1


def test_the_name_servers_setting_takes_addresses_with_ports_and_refuses_names() -> None:
    assert name_server_list("127.0.0.1:5353, [::1]:53 ::1 192.0.2.53") is None
    servers = name_servers("127.0.0.1:5353, [::1]:53 ::1")
    assert [(s.address, s.port) for s in servers] == [("127.0.0.1", 5353), ("::1", 53), ("::1", 53)]
    assert "no IP address" in str(name_server_list("ns1.example"))
    assert "port" in str(name_server_list("127.0.0.1:70000"))


async def test_verifying_a_domain_takes_back_an_address_another_account_claimed_first(
    embedded: EmbeddedMongo, db_name: str, start_client: Any, dns_server: FakeDns, sink: SmtpSink
) -> None:
    """shop2 adds sales@ of a domain it cannot prove; the domain's owner (default) cannot add it
    until it verifies the domain, which releases shop2's mailbox: disabled, its reason in shop2's
    API and on its Inboxes page; the owner then adds the address and receives its mail."""
    install = await _started(embedded, db_name, start_client, dns_server, sink)
    squat = await (await install.add("shop2", f"sales@{DOMAIN}")).json()
    elsewhere = await (await install.add("shop2", "help@shop2.example")).json()
    assert (await install.add("default", f"sales@{DOMAIN}")).status == 409  # held: one address, one inbox
    ours = await (await install.add("default", f"billing@{DOMAIN}")).json()

    # a verification that fails releases nothing
    dns_server.txt[DOMAIN] = ["omnirouter-verification=not-the-token"]
    assert (await (await install.verify("default", ours["id"])).json())["verified"] is False
    assert not (await _shop2_inbox(install, squat["id"]))["disabled"]

    dns_server.txt[DOMAIN] = [ours["verification"]["record"]]
    assert (await (await install.verify("default", ours["id"])).json())["verified"] is True
    released = await _shop2_inbox(install, squat["id"])
    assert released["disabled"] is True and released["released"]["domain"] == DOMAIN
    assert released["released"]["at"] and f"sales@{DOMAIN}" in released["released"]["reason"]
    assert "released" not in await _shop2_inbox(install, elsewhere["id"])  # another domain's: untouched
    entries = [e async for e in install.store.audit.audit_entries(AuditQuery("shop2", action="inbox.release"), 10)]
    assert [(e.target, e.actor, e.details) for e in entries] == [(squat["id"], "system", {"domain": DOMAIN})]

    taken = await install.add("default", f"sales@{DOMAIN}")
    assert taken.status == 201, await taken.text()
    _, reply = await install.send(f"sales@{DOMAIN}")
    assert reply.startswith("2.0.0 recorded")
    [thread] = await raw_database_of(install.store).threads.find({}).to_list()
    assert (thread["account_id"], thread["inbox_id"]) == ("default", (await taken.json())["id"])

    # shop2 cannot have it back: not enabled as it is, not given the address again, not verified
    path = f"/api/accounts/shop2/inboxes/{squat['id']}"
    enable = await install.client.patch(path, json={"disabled": False}, headers=install.headers["shop2"])
    assert enable.status == 409 and (await enable.json())["error"] == "inbox_released"
    again = {"settings": {"address": f"sales@{DOMAIN}"}, "disabled": False}
    assert (await install.client.patch(path, json=again, headers=install.headers["shop2"])).status == 409
    assert (await install.verify("shop2", squat["id"])).status == 409
    # another address of its own lets it be used again
    moved = {"settings": {"address": "sales@shop2.example"}, "disabled": False}
    changed = await install.client.patch(path, json=moved, headers=install.headers["shop2"])
    assert changed.status == 200 and "released" not in (shown := await changed.json()) and not shown["disabled"]


async def test_a_domain_verified_before_takes_back_the_address_when_its_owner_adds_it(
    embedded: EmbeddedMongo, db_name: str, start_client: Any, dns_server: FakeDns, sink: SmtpSink
) -> None:
    """A store where the owner verified the domain after another account had claimed an address
    there (nothing was released then): adding that address releases it."""
    install = await _started(embedded, db_name, start_client, dns_server, sink)
    squat = await (await install.add("shop2", f"sales@{DOMAIN}")).json()
    assert await install.store.mail_domains.mark_verified("default", DOMAIN, utcnow())
    taken = await install.add("default", f"sales@{DOMAIN}")
    assert taken.status == 201, await taken.text()
    assert (await _shop2_inbox(install, squat["id"]))["released"]["domain"] == DOMAIN
    # shop2 may not take the owner's other addresses there either
    assert (await install.add("shop2", f"info@{DOMAIN}")).status == 409
    # nor keep one it held before: the owner moving an existing mailbox onto it takes it back too
    held = await (await install.add("shop2", "info@elsewhere.example")).json()
    await raw_database_of(install.store).inboxes.update_one(
        {"_id": held["id"]}, {"$set": {"route": f"email:help@{DOMAIN}", "config.address": f"help@{DOMAIN}"}}
    )  # as an earlier release let it
    added = await install.add("default", f"old@{DOMAIN}")
    assert added.status == 201, await added.text()
    mine = await added.json()
    moved = await install.client.patch(
        f"/api/accounts/default/inboxes/{mine['id']}",
        json={"settings": {"address": f"help@{DOMAIN}"}},
        headers=install.headers["default"],
    )
    assert moved.status == 200, await moved.text()
    assert (await _shop2_inbox(install, held["id"]))["released"]["domain"] == DOMAIN
    # an address one of its own mailboxes holds is refused, and both keep theirs
    again = await install.client.patch(
        f"/api/accounts/default/inboxes/{mine['id']}",
        json={"settings": {"address": f"sales@{DOMAIN}"}},
        headers=install.headers["default"],
    )
    assert again.status == 409 and (await again.json())["error"] == "inbox_taken"
    kept = await install.store.inboxes.get_inbox(mine["id"])
    assert kept is not None and kept.route == f"email:help@{DOMAIN}"


async def test_the_released_mailbox_s_admin_is_told_why_on_the_inboxes_page(
    embedded: EmbeddedMongo, db_name: str, start_client: Any, dns_server: FakeDns, sink: SmtpSink
) -> None:
    install = await _started(embedded, db_name, start_client, dns_server, sink)
    squat = await (await install.add("shop2", f"sales@{DOMAIN}")).json()
    owner, _ = await add_agent(install.store, "shop2", "owner", role=Role.ADMIN, password=PASSWORD)
    assert owner is not None
    browser = Browser(install.client)
    try:
        assert (await browser.log_in("shop2", "owner", PASSWORD)).status == 303
        _, page = await browser.get("/admin/inboxes")
        assert "mailbox-released" not in article(page, squat["id"])
        ours = await (await install.add("default", f"billing@{DOMAIN}")).json()
        dns_server.txt[DOMAIN] = [ours["verification"]["record"]]
        assert (await (await install.verify("default", ours["id"])).json())["verified"] is True

        _, page = await browser.get("/admin/inboxes")
        row = article(page, squat["id"])
        assert 'class="error mailbox-released"' in row and "another account verified the mail domain" in row
        assert f"sales@{DOMAIN}" in row and 'data-state="disabled"' in row
        assert "verify-domain" not in row and "domain-waiting" not in row
        status, page = await browser.post(
            f"/admin/inboxes/{squat['id']}/state", {"action": "enable"}, page="/admin/inboxes"
        )
        assert status == 409 and "which another account has verified" in article(page, squat["id"])
        assert (await _shop2_inbox(install, squat["id"]))["disabled"] is True
        for lang, words in (("lv", "cits konts apstiprināja pasta domēnu"), ("ru", "другой аккаунт подтвердил")):
            await install.store.agents.update_agent(owner.id, lang=lang)
            _, page = await browser.get("/admin/inboxes")
            assert words in article(page, squat["id"]), lang
    finally:
        await browser.close()


async def _shop2_inbox(install: Install, inbox_id: str) -> dict[str, Any]:
    listed = await install.client.get("/api/accounts/shop2/inboxes", headers=install.headers["shop2"])
    found: dict[str, Any] = next(item for item in (await listed.json())["items"] if item["id"] == inbox_id)
    return found


async def test_a_mailbox_read_over_imap_keeps_its_address_when_another_account_proves_the_domain(
    embedded: EmbeddedMongo, db_name: str, start_client: Any, dns_server: FakeDns, sink: SmtpSink
) -> None:
    """Releasing a domain frees only listener-fed mailboxes: one read over IMAP has proven its
    address with its login (as a store of the earlier release may hold beside another account's
    proof of the domain), and it keeps its address, enabled."""
    install = await _started(embedded, db_name, start_client, dns_server, sink)
    now = utcnow()
    listener = {"address": f"sales@{DOMAIN}", "smtp_host": "127.0.0.1", "smtp_port": sink.port}
    imap = {**listener, "address": f"read@{DOMAIN}", "imap_host": "127.0.0.1", "imap_port": 1}
    fed = await install.store.inboxes.create_inbox("shop2", "email", "fed", listener, now, f"email:sales@{DOMAIN}")
    read = await install.store.inboxes.create_inbox("shop2", "email", "read", imap, now, f"email:read@{DOMAIN}")
    assert fed is not None and read is not None
    released = await release_squatted(install.store, "default", DOMAIN)
    assert [inbox.id for inbox in released] == [fed.id]
    kept = await install.store.inboxes.get_inbox(read.id)
    assert kept is not None and kept.route == f"email:read@{DOMAIN}" and not kept.disabled
    assert await release_squatted(install.store, "default", DOMAIN) == []  # nothing more, no audit line
    entries = [e async for e in install.store.audit.audit_entries(AuditQuery("shop2", action="inbox.release"), 10)]
    assert [e.target for e in entries] == [fed.id]
