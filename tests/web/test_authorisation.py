"""The authorisation matrix: every console and API route the application serves — enumerated from
its router, so a new route is covered the day it is added — called by anonymous, an agent, a
member and a non-member of the probed conversation's inbox, a supervisor, an admin, another
account's admin and the superadmin, against one account's records.

Each route's handler carries its access mark (``bot/web/access.py``); a route without one must be
public on purpose (listed below) or this test fails. What is checked:

* who may not call a route is refused (401, 403, 404, or the login page) and learns nothing: no
  response carries the account's private data, and none of its records changes;
* who may call it gets past the guard (no 401/403/404, no 5xx);
* an agent of the account who is not a member of the conversation's inbox calls its routes as if
  it did not exist: refused or shown nothing of it, and it does not change.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from bot.keys import EGRESS, EVENTS, NLU, PIPELINE, STORE
from bot.router.webhooks.subscriptions import subscribe
from bot.services.accounts import create_account
from bot.services.agents import add_agent
from bot.services.campaigns import create_campaign
from bot.services.contact_merge import merge
from bot.web.access import Access, access_of
from bot.web.api.kit import issue_token
from bot.web.keys import API_OPERATIONS, FIRST_ADMIN
from conversations.agent_models import Role
from conversations.models import utcnow
from conversations.tenant_models import EVENT_TYPES
from conversations.traffic import Attachment, Identity, Inbound
from conversations.training import example_id
from tests.conftest import make_settings, raw_database_of

INSTALL = "install-wide-token"
PASSWORD = "correct horse battery"
MARKERS = ("ACME-PRIVATE-7731", "Acme Agent Zed", "acme-crm-token", "acme-hook-path")
# the probed conversation's own words (its message, its customer's name): what no page or answer may
# show a non-member of its inbox, on any route, lists and searches included
CONVERSATION_MARKER = "ACME-THREAD-4419"
PUBLIC = (
    "/chat",  # and /chat/embed, the website widget's frame
    "/widget",  # widget.js and its /widget/config: what every visitor of an allowed site loads
    "/webchat/",
    "/healthz",
    "/metrics",
    "/login",
    "/static",
    "/webhooks/",
    "/api/openapi.json",
    "/favicon.ico",
    "/csat/",  # the rating page of an e-mail's link: the signed token is the key
    "/unsubscribe/",  # a campaign mail's one-click unsubscribe: its random token is the key
)
# the GridFS bucket's collections as MongoDB and the embedded server list them (the latter cannot
# sort them): snapshots read attachment_files, which says whose each file is
GRIDFS = frozenset({"files.files", "files.chunks", "files_files", "files_chunks"})
# a campaign of acme's, scheduled for later: its report and its stop are probed
ACME_CAMPAIGN: dict[str, Any] = {
    "account_id": "acme",
    "name": "ACME-PRIVATE-7731",
    "channel": "webchat",
    "text": "ACME-PRIVATE-7731",
    "send_at": datetime(2099, 1, 1, tzinfo=UTC),
}
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
# what a non-member of the conversation's inbox must leave as it is
CONVERSATION = ("threads", "messages", "timeline", "contacts", "contact_merges", "outbox")

# a valid body for every API operation that takes one (so a refusal is the guard's, not a 400)
API_BODIES: dict[tuple[str, str], Any] = {
    ("POST", "/api/threads/{thread_id}/replies"): {"id": "authz-1", "text": "hello"},
    ("POST", "/api/threads/{thread_id}/notes"): {"text": "a note"},
    ("PUT", "/api/threads/{thread_id}/labels"): {"labels": ["checked"]},
    ("POST", "/api/threads/{thread_id}/assign"): {"team": "support"},
    ("POST", "/api/agents"): {"login": "newbie"},
    ("PATCH", "/api/agents/{agent_id}"): {"capacity": 4},
    ("POST", "/api/accounts"): {"id": "newco", "name": "New company"},
    ("PATCH", "/api/accounts/{account_id}"): {"retention_days": 10},
    ("PUT", "/api/accounts/{account_id}/channels/telegram"): {"token": "1:x", "webhook_secret": "s"},
    ("PUT", "/api/accounts/{account_id}/channels/whatsapp"): {
        "phone_number_id": "1",
        "access_token": "a",
        "app_secret": "b",
        "verify_token": "c",
    },
    ("POST", "/api/accounts/{account_id}/inboxes"): {
        "channel": "telegram",
        "name": "second bot",
        "settings": {"token": "2:y", "webhook_secret": "s2"},
    },
    ("PATCH", "/api/accounts/{account_id}/inboxes/{inbox_id}"): {"name": "renamed", "settings": {"token": "3:z"}},
    # not a chat id: refused (422) before anything is sent, so nothing leaves 127.0.0.1
    ("POST", "/api/accounts/{account_id}/inboxes/{inbox_id}/test"): {"to": "not-a-chat"},
    ("POST", "/api/accounts/{account_id}/campaigns"): {"name": "authz", "channel": "webchat", "text": "hello"},
    ("POST", "/api/webhooks"): {"url": "http://127.0.0.1:9/new-hook"},
    ("PATCH", "/api/webhooks/{subscription_id}"): {"description": "changed"},
    ("POST", "/api/nlu/parse"): {"text": "hello"},
    ("POST", "/api/nlu/examples"): {"examples": [{"text": "good morning", "intent": "greet"}]},
    ("POST", "/api/nlu/train"): {"activate": False},
    ("POST", "/api/intents"): {"name": "new_intent"},
    ("PUT", "/api/intents/{intent}"): {"examples": [{"text": "hello"}, {"text": "hi there"}]},
    ("POST", "/api/intents/{intent}/examples"): {"text": "good day to you"},
    ("PATCH", "/api/intents/{intent}/examples/{example}"): {"language": "en"},
    ("POST", "/api/nlu/import"): {"yaml": "nlu:\n- intent: greet\n  examples: |\n    - howdy\n"},
    ("POST", "/api/nlu/review/{message_id}"): {"intent": None},
    ("POST", "/api/nlu/try"): {"text": "hello"},
    ("POST", "/api/contacts/{contact_id}/merge"): {"from": "{other_contact_id}"},
}
CONSOLE_FORMS: dict[tuple[str, str], dict[str, str]] = {
    ("POST", "/console/shift"): {"action": "start"},
    ("POST", "/console/lang"): {"lang": "en"},
    ("POST", "/console/threads/{thread_id}/{action}"): {"text": "a note"},
    ("POST", "/admin/agents"): {"login": "newbie2", "role": "agent", "capacity": "5"},
    ("POST", "/admin/agents/{agent_id}"): {"teams": "", "capacity": "5", "role": "agent", "active": "on"},
    ("POST", "/admin/routing"): {"strategy": "manual", "business_hours": "", "timezone": "UTC"},
    ("POST", "/admin/canned"): {"shortcut": "hi", "text": "Hello"},
    ("POST", "/admin/account/attributes"): {"key": "plan", "label": "Plan", "kind": "text"},
    ("POST", "/admin/account/channels/{channel}"): {"token": "1:x", "webhook_secret": "s"},
    ("POST", "/admin/account/conversations"): {"reopen_days": "3", "retention_days": ""},
    ("POST", "/admin/account/tokens"): {"name": "new token", "scope_read": "on"},
    ("POST", "/admin/account/webhooks"): {"url": "http://127.0.0.1:9/h", "event_thread.created": "on"},
    ("POST", "/admin/account/webhooks/{subscription_id}"): {"action": "toggle"},
    ("POST", "/admin/accounts"): {"id": "newco2", "name": "New", "admin": "boss"},
    ("POST", "/admin/accounts/{account_id}"): {"action": "enable"},
    ("POST", "/admin/inboxes"): {"channel": "telegram", "name": "third bot", "token": "4:w", "webhook_secret": "s4"},
    # an api_base the install does not allow: refused (400) before anything changes, so acme's inbox
    # keeps the one below and its Check asks no one (nothing leaves 127.0.0.1)
    ("POST", "/admin/inboxes/{inbox_id}"): {"name": "renamed", "api_base": "http://127.0.0.1:9"},
    ("POST", "/admin/inboxes/{inbox_id}/state"): {"action": "disable"},
    ("POST", "/admin/inboxes/{inbox_id}/routing"): {"bot": "off", "team": "sales"},
    ("POST", "/admin/inboxes/{inbox_id}/test"): {"to": "not-a-chat"},  # a form error: nothing is sent
    ("POST", "/admin/intents"): {"name": "console_intent"},
    ("POST", "/admin/campaigns"): {"name": "authz", "channel": "webchat", "text": "hello"},
    ("POST", "/admin/intents/examples/{example}"): {"action": "save", "text": "hello", "language": "en"},
    ("POST", "/admin/intents/{intent}/examples"): {"text": "hello from the console"},
    ("POST", "/admin/intents/learn/{message_id}"): {"intent": "greet"},
    ("POST", "/admin/intents/try"): {"text": "hello"},
    ("POST", "/console/contacts/{contact_id}/merge"): {"from": "{other_contact_id}"},
}
QUERIES = {
    ("GET", "/console"): "?thread={thread_id}",
    # the reports of acme's second bot: acme's supervisors and admins read them; another account's
    # admin (and the install's superadmin, of its own account) asking for that inbox gets a 400
    # that shows nothing of it
    ("GET", "/admin/reports"): "?inbox={inbox_id}",
    ("GET", "/admin/reports.csv"): "?inbox={inbox_id}",
    ("GET", "/api/accounts/{account_id}/reports"): "?inbox={inbox_id}",
    # words of the probed conversation (the page repeats the query, so not the whole marker): a
    # member finds it, a non-member must not
    ("GET", "/console/search"): "?q=4419",
    # account-wide operations on acme's records: the install-wide token names the account
    **dict.fromkeys(
        [
            ("GET", "/api/intents/{intent}"),
            ("PUT", "/api/intents/{intent}"),
            ("DELETE", "/api/intents/{intent}"),
            ("POST", "/api/intents/{intent}/examples"),
            ("PATCH", "/api/intents/{intent}/examples/{example}"),
            ("DELETE", "/api/intents/{intent}/examples/{example}"),
            ("POST", "/api/nlu/review/{message_id}"),
        ],
        "?account={account_id}",
    ),
}


@dataclass
class World:
    """One router with three accounts: acme (whose records are probed), rival, and the install's."""

    client: TestClient
    samples: dict[str, str]
    tokens: dict[str, str]
    logins: dict[str, tuple[str, str]]  # principal -> (account, login)
    sessions: dict[str, aiohttp.ClientSession] = field(default_factory=dict)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.client.server.port}"

    async def snapshot(self) -> dict[str, list[Any]]:
        """Every record of acme, collection by collection."""
        db = raw_database_of(self.client.server.app[STORE])  # every collection, whoever owns it
        found = {}
        for name in await db.list_collection_names():
            if name in GRIDFS:
                continue  # the files' bytes: who they belong to is in attachment_files
            docs = await db[name].find({"$or": [{"account_id": "acme"}, {"_id": "acme"}]}).sort("_id").to_list()
            found[name] = docs
        return found


async def build_world(embedded: Any, db_name: str, start_client: Any) -> World:
    settings = make_settings(
        embedded.uri,
        db_name,
        api={"token": INSTALL},
        webhooks={"allow_private_networks": True, "concurrency": 0},
        nlu={"semantic": False},
    )  # a training job started by the probe stays quick
    client: TestClient = await start_client(settings)
    app = client.server.app
    store = app[STORE]
    superadmin, _ = app[FIRST_ADMIN]
    await create_account(store, "acme", "Acme", "acme-admin", password=PASSWORD)
    await create_account(store, "rival", "Rival", "rival-admin", password=PASSWORD)
    agent, _ = await add_agent(store, "acme", "acme-agent", name="Acme Agent Zed", password=PASSWORD)
    assert agent is not None
    await add_agent(store, "acme", "acme-supervisor", name="Acme Supervisor", role=Role.SUPERVISOR, password=PASSWORD)
    # the probed conversation is of acme's first web chat: a member of that inbox, and one of another
    member, _ = await add_agent(
        store, "acme", "acme-member", name="Acme Member", password=PASSWORD, inboxes=["first:webchat"]
    )
    subscription, _ = await subscribe(
        store,
        app[EVENTS],
        "acme",
        "http://127.0.0.1:9/acme-hook-path",
        EVENT_TYPES,
        "acme-hook-path",
        app[EGRESS].webhooks,
    )
    recorded, task = await app[PIPELINE].receive(
        Inbound(
            account_id="acme",
            channel="webchat",
            external_id="acme-1",
            sender=Identity("webchat", "acme-visitor"),
            text=f"ACME-PRIVATE-7731 {CONVERSATION_MARKER}",
            sender_name=f"ACME-PRIVATE-7731 {CONVERSATION_MARKER}",
            attachments=(Attachment(kind="image", provider_ref="file-1"),),
        )
    )
    assert task is not None
    await task
    other, third = [await _customer(app, n) for n in (2, 3)]  # a standing merge to undo, a contact to merge
    standing = await merge(store, "acme", other, third, "test")
    sent = await store.files.keep_upload(  # a file an agent sent to the customer
        upload="upl_" + "a" * 24,
        account_id="acme",
        contact_id=recorded.message.contact_id,
        thread_id=recorded.thread.id,
        name="acme-file.txt",
        content_type="text/plain",
        data=b"ACME-PRIVATE-7731",
        quota=10**6,
    )
    inbox = await store.inboxes.create_inbox(  # a second bot of acme's, named so a leak shows; its
        "acme",  # api_base is not one the install allows, so its Check asks no one
        "telegram",
        "ACME-PRIVATE-7731 bot",
        {"token": "9:acme", "webhook_secret": "s", "api_base": "http://127.0.0.1:9"},
        utcnow(),
        None,
    )
    assert inbox is not None
    outsider, _ = await add_agent(
        store, "acme", "acme-outsider", name="Acme Outsider", password=PASSWORD, inboxes=[inbox.id]
    )
    assert member is not None and outsider is not None
    spare = await issue_token(store, "acme", "acme-crm-token spare", ["read"], "test")
    tokens = {
        "admin": await issue_token(store, "acme", "acme-crm-token", ["read", "write"], "test"),
        "other_admin": await issue_token(store, "rival", "rival-crm", ["read", "write"], "test"),
        "superadmin": INSTALL,
        # tokens that act for an agent: the member's and the non-member's of the probed conversation's inbox
        "member": await issue_token(store, "acme", "acme member's", ["read", "write"], "test", member),
        "non_member": await issue_token(store, "acme", "acme outsider's", ["read", "write"], "test", outsider),
    }
    spare_id = next(t.id for t in await store.accounts.list_api_tokens("acme") if t.prefix == spare[:8])
    samples = {
        "thread_id": recorded.thread.id,
        "message_id": recorded.message.id,
        "index": "0",
        "item_id": (await store.outbox.list_outbox(None, "acme"))[0].id,
        "agent_id": agent.id,
        "account_id": "acme",
        "channel": "telegram",
        "action": "note",
        "contact_id": recorded.message.contact_id,
        "token_id": spare_id,
        "subscription_id": subscription.id,
        "delivery_id": (await store.webhooks.list_deliveries(subscription.id))[0].id,
        **await _nlu_samples(app),
        "intent": "greet",
        "example": example_id("acme", "hello"),
        "key": "plan",
        "other_contact_id": other,
        "merge_id": standing.id,
        "file": f"{sent.message_id}:0",
        "campaign_id": (await create_campaign(store, None, **ACME_CAMPAIGN)).id,
        "inbox_id": inbox.id,
    }
    logins = {
        "agent": ("acme", "acme-agent"),
        "member": ("acme", "acme-member"),
        "non_member": ("acme", "acme-outsider"),
        "supervisor": ("acme", "acme-supervisor"),
        "admin": ("acme", "acme-admin"),
        "other_admin": ("rival", "rival-admin"),
        "superadmin": ("default", superadmin),
    }
    password = app[FIRST_ADMIN][1]
    world = World(client, samples, tokens, logins)
    for who, (account, login) in logins.items():
        world.sessions[who] = await _session(world, account, login, password if who == "superadmin" else PASSWORD)
    world.sessions["anonymous"] = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    return world


async def _customer(app: web.Application, n: int) -> str:
    """Another customer of acme's writes once; their contact id."""
    inbound = Inbound("acme", "webchat", f"acme-{n}", Identity("webchat", f"acme-visitor-{n}"), f"hello {n}")
    recorded, task = await app[PIPELINE].receive(inbound)
    if task is not None:
        await task
    return recorded.message.contact_id


async def _nlu_samples(app: web.Application) -> dict[str, str]:
    """A finished training job of acme's and the model version it made (not activated)."""
    job = await app[NLU].start_job(app[NLU].train_request("acme", activate=False, by="test"))
    # a training takes ~10 s alone and over 60 s beside another suite on two cores
    async with asyncio.timeout(240):
        while (await app[STORE].nlu.get_nlu_job(job) or {}).get("state", "running") == "running":
            await asyncio.sleep(0.05)
    done = await app[STORE].nlu.get_nlu_job(job)
    assert done is not None and done["state"] == "done", done
    return {"job": job, "version": str(done["version"])}


async def _session(world: World, account: str, login: str, password: str) -> aiohttp.ClientSession:
    session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    page = await (await session.get(f"{world.base}/login")).text()
    token = CSRF.search(page).group(1)  # type: ignore[union-attr]
    response = await session.post(
        f"{world.base}/login",
        allow_redirects=False,
        data={"account": account, "login": login, "password": password, "csrf_token": token},
    )
    assert response.status == 303, f"{login} could not log in"
    return session


def guarded_routes(app: web.Application) -> Iterator[tuple[str, str, Access]]:
    """Every route that is not public, in an order where what ends a session or deletes comes last."""
    found = []
    for route in app.router.routes():
        resource = route.resource
        if route.method == "HEAD" or resource is None:
            continue
        path = resource.canonical
        access = access_of(route.handler)
        if path == "/" or path.startswith(PUBLIC):
            continue
        assert access is not None, f"{route.method} {path} has no access mark and is not listed as public"
        found.append((route.method, path, access))
    order = {"GET": 0, "POST": 1, "PUT": 1, "PATCH": 1, "DELETE": 2}
    # deletions of sub-records (an intent's example) before deletions of their parents (the intent)
    yield from sorted(
        found, key=lambda r: (r[1] == "/logout", order.get(r[0], 1), -r[1].count("/") if r[0] == "DELETE" else 0, r[1])
    )


def filled(values: dict[str, Any], samples: dict[str, str]) -> dict[str, Any]:
    """A body's or form's values with their ``{sample}`` placeholders filled."""
    return {k: _fill(v, samples) if isinstance(v, str) and v.startswith("{") else v for k, v in values.items()}


def _fill(template: str, samples: dict[str, str]) -> str:
    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        assert name in samples, f"add a sample value for the path parameter {{{name}}}"
        return samples[name]

    return re.sub(r"{(\w+)}", one, template)


async def call(world: World, who: str, method: str, template: str, access: Access) -> tuple[int, str, str]:
    session = world.sessions[who]
    url = world.base + _fill(template, world.samples) + _fill(QUERIES.get((method, template), ""), world.samples)
    options: dict[str, Any] = {"allow_redirects": False}
    if access.kind == "token":
        if who in world.tokens:
            options["headers"] = {"Authorization": f"Bearer {world.tokens[who]}"}
        if (method, template) in API_BODIES:
            options["json"] = filled(API_BODIES[(method, template)], world.samples)
    elif method != "GET":
        form = filled(CONSOLE_FORMS.get((method, template), {}), world.samples)
        csrf = await _console_csrf(world, who)
        if csrf:
            form["csrf_token"] = csrf
        options["data"] = form
    async with session.request(method, url, **options) as response:
        return response.status, await response.text(), response.headers.get("Location", "")


async def _console_csrf(world: World, who: str) -> str:
    if who == "anonymous":
        return ""
    page = await (await world.sessions[who].get(f"{world.base}/console")).text()
    found = CSRF.search(page)
    return found.group(1) if found else ""


def expected(who: str, method: str, template: str, access: Access) -> str:
    """``allowed``, ``denied`` (refused outright), ``foreign`` (let in, but only to the caller's own
    account: nothing of acme may show or change; for ``non_member``, nothing of the conversation
    of an inbox they are not a member of) or ``let_in`` (past the guard and the conversation is
    found, though the queue's rules may refuse the action: a member's token)."""
    touches_acme = "{" in template or (method, template) in QUERIES
    if access.kind == "token":
        if who in ("member", "non_member"):  # a token that acts for that agent: the conversation routes only
            if not access.agents or access.superadmin:
                return "denied"
            return "foreign" if who == "non_member" else "let_in"
        if who in ("anonymous", "agent", "supervisor"):
            return "denied"  # no token: console sessions are not API credentials
        if access.superadmin:
            return "allowed" if who == "superadmin" else "denied"
        if who == "other_admin":
            return "denied" if touches_acme else "foreign"
        return "allowed"
    if who == "anonymous":
        return "denied"
    rank = {
        "agent": Role.AGENT,
        "member": Role.AGENT,
        "non_member": Role.AGENT,
        "supervisor": Role.SUPERVISOR,
        "admin": Role.ADMIN,
        "other_admin": Role.ADMIN,
        "superadmin": Role.SUPERADMIN,
    }[who]
    if rank.rank < access.role.rank:
        return "denied"
    if access.role == Role.SUPERADMIN:
        return "allowed"
    if who == "non_member" and of_the_conversation(method, template):
        return "foreign"
    return "allowed" if who in ("agent", "member", "non_member", "supervisor", "admin") else "foreign"


def of_the_conversation(method: str, template: str) -> bool:
    """Whether a console route reads or changes the probed conversation, its messages, files or
    contacts (what a non-member of its inbox must not reach)."""
    path = template + QUERIES.get((method, template), "")
    return any(f"{{{name}}}" in path for name in ("thread_id", "message_id", "file", "contact_id", "merge_id"))


def check(who: str, method: str, template: str, outcome: str, status: int, body: str, location: str) -> list[str]:
    route = f"{who}: {method} {template} -> {status}"
    problems = []
    if status >= 500:
        problems.append(f"{route}: server error")
    if outcome == "allowed" and status in (401, 403, 404):
        problems.append(f"{route}: refused, but {who} may call it")
    if outcome == "let_in" and status in (401, 404):
        problems.append(f"{route}: refused or not found, but {who} sees it")
    if outcome == "denied":
        refused = status in (401, 403, 404) or (status == 303 and location == "/login")
        if not refused:
            problems.append(f"{route}: not refused")
    if who == "non_member" and CONVERSATION_MARKER in body:
        problems.append(f"{route}: shows the conversation of an inbox {who} is not a member of")
    if who == "member" and (method, template) == ("GET", "/console/search") and CONVERSATION_MARKER not in body:
        problems.append(
            f"{route}: the member's search does not find the conversation (so a non-member's proves nothing)"
        )
    if outcome not in ("allowed", "let_in"):  # acme's own agent may see their own name in the top bar
        problems += [
            f"{route}: shows {marker!r}"
            for marker in MARKERS
            if marker in body and not (who == "agent" and marker == "Acme Agent Zed")
        ]
    return problems


async def test_every_api_operation_with_a_body_has_a_sample_here(client: TestClient) -> None:
    missing = [
        (op.method, op.path)
        for op in client.server.app[API_OPERATIONS]
        if op.body is not None and (op.method, op.path) not in API_BODIES
    ]
    assert not missing, f"add a valid body to API_BODIES for {missing}"


ROWS = ["anonymous", "other_admin", "agent", "member", "non_member", "supervisor", "admin", "superadmin"]


@pytest.mark.parametrize("who", ROWS)
async def test_every_route_refuses_whom_it_must_and_leaks_nothing_across_accounts(
    embedded: Any, db_name: str, start_client: Any, who: str
) -> None:
    problems: list[str] = []
    checked = 0
    world = await build_world(embedded, db_name, start_client)
    try:
        before = await world.snapshot()
        for method, template, access in guarded_routes(world.client.server.app):
            outcome = expected(who, method, template, access)
            status, body, location = await call(world, who, method, template, access)
            problems += check(who, method, template, outcome, status, body, location)
            checked += 1
        if who in ("anonymous", "other_admin"):  # refused or kept to their own account: acme is untouched
            after = await world.snapshot()
            for collection in sorted(set(before) | set(after)):
                if before.get(collection, []) != after.get(collection, []):
                    problems.append(f"{who} changed acme's {collection}")
        if who == "non_member":  # the conversation of an inbox they are not a member of is untouched
            after = await world.snapshot()
            for collection in CONVERSATION:
                if before.get(collection, []) != after.get(collection, []):
                    problems.append(f"{who} changed acme's {collection}")
    finally:
        for session in world.sessions.values():
            await session.close()
    assert not problems, "\n".join(problems)
    assert checked >= 50  # the router has this many guarded routes; fewer means routes went missing
