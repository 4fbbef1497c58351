"""An XSS corpus put in everywhere a stranger or a colleague writes text — customer messages,
contact names and attachment file names over signed Telegram webhooks, an e-mail's sender,
subject, body and attachment over SMTP, the web chat, and the console's own forms (replies,
notes, canned replies, agent and account names, a login name that lands in the audit log) — then
rendered in Debian's headless Chromium: the console, every thread, the live feed, the admin pages
and the customer's chat page, plus pages that echo the query string.

Inert means, on every page: no dialog ever opened, none of the payloads' elements or event-handler
attributes exists in the DOM, no script but our own files, no Content-Security-Policy violation
(the CSP is defence in depth: the markup itself must be escaped, so the policy never has anything
to block), and the text shows literally. Server side: the JSON API gives the texts back unchanged,
and no cell of a CSV download can start a spreadsheet formula.
"""

from __future__ import annotations

import asyncio
import copy
import csv
import io
import re
import secrets
import time
from email.headerregistry import Address
from email.message import EmailMessage
from typing import Any
from urllib.parse import quote

import aiohttp
import aiosmtplib
import pytest
from aiohttp.test_utils import TestClient
from playwright.async_api import Browser, BrowserContext, Dialog, Page, expect

from bot.keys import ADAPTERS, STORE
from bot.web.api.kit import issue_token
from bot.web.keys import FIRST_ADMIN
from conversations.embedded import free_port
from tests import traffic
from tests.conftest import raw_database_of
from tests.handlers.channels import fixture
from tests.hostile.conftest import OUR_ADDRESS, every_channel, post, settled
from tests.web.conftest import browser  # noqa: F401  (the fixture)
from tests.web.console.test_console import console_csrf, log_in
from tests.web.console.test_console_browser import log_in_page

pytestmark = pytest.mark.browser

PAYLOADS = [
    '<script>alert("xss-script")</script>',
    "<img src=x id=xss1 onerror=alert(1)>",
    '"><svg id=xss2 onload=alert(2)>',
    "'><iframe id=xss3 src=javascript:alert(3)></iframe>",
    '<a id=xss4 href="javascript:alert(4)">click me</a>',
    "<math><mtext><table><mglyph><style><img id=xss5 src=x onerror=alert(5)>",
    "{{7*7}} ${7*7} <%= 7*7 %> #{7*7} {% raw %}",
    '<div id=xss6 style="background:url(javascript:alert(6))">styled</div>',
    "<style>body{display:none}</style><b id=xss7>bold</b>",
    "\u202etxt.exe\u202c <details id=xss8 open ontoggle=alert(8)>",
    '<button id=xss9 hx-post="/logout" hx-trigger="load">',
    '<div id=xss10 hx-on:htmx:load="alert(10)">x</div>',
    "</textarea></script></title><img id=xss11 src=x onerror=alert(11)>",
    '<!--<img src="--><img id=xss12 src=x onerror=alert(12)>',
    '" autofocus onfocus="alert(13)" x="',
    '=HYPERLINK("http://evil.example","xss14")',
    "x" * 3000 + "<img id=xss15 src=x onerror=alert(15)>",
]
CSV_PAYLOADS = ['=HYPERLINK("http://evil.example","csv")', "+1+1", "-2+3", "@SUM(1+1)", "\uff1d1+1"]
FORMULA = re.compile(r"^[=+\-@\t\r\uff1d\uff0b\uff0d\uff20]")
NUMBER = re.compile(r"^-?\d+(\.\d+)?$")

INSPECT = """() => {
  const found = [];
  for (const el of document.querySelectorAll('*')) {
    const id = el.getAttribute('id') || '';
    if (id.startsWith('xss')) found.push('element #' + id);
    for (const a of el.attributes) {
      const name = a.name.toLowerCase();
      if (name.startsWith('on') || name.includes('hx-on')) found.push(el.tagName + '[' + name + ']');
      if (/^\\s*javascript:/i.test(a.value)) found.push(el.tagName + '[' + name + '=javascript:]');
    }
  }
  for (const s of document.scripts) {
    if (s.type === 'application/json') continue;
    if (!s.src || new URL(s.src).origin !== location.origin) found.push('script ' + (s.src || s.textContent.slice(0, 40)));
  }
  for (const el of document.body.querySelectorAll('iframe, object, embed, math, style, base, details:not(.fold), svg:not(.chart)')) {
    found.push('foreign <' + el.tagName.toLowerCase() + '>');
  }
  return found.concat(window.__cspViolations || []);
}"""
WATCH_CSP = """window.__cspViolations = [];
document.addEventListener('securitypolicyviolation',
  (e) => window.__cspViolations.push('CSP violation: ' + e.violatedDirective + ' ' + e.blockedURI));"""


class Inspector:
    """A browser context whose pages fail the test on any dialog, and a check for injected markup."""

    def __init__(self, context: BrowserContext) -> None:
        self.context = context
        self.dialogs: list[str] = []
        self.pages_checked = 0

    @classmethod
    async def open(cls, browser: Browser) -> Inspector:
        inspector = cls(await browser.new_context())
        await inspector.context.add_init_script(WATCH_CSP)
        return inspector

    async def page(self) -> Page:
        page = await self.context.new_page()
        page.on("dialog", self._dialog)
        return page

    async def _dialog(self, dialog: Dialog) -> None:
        """Recorded (the next check fails on it) and dismissed, so the page goes on."""
        self.dialogs.append(f"{dialog.type}: {dialog.message}")
        await dialog.dismiss()

    async def inert(self, page: Page, where: str) -> None:
        found = await page.evaluate(INSPECT)
        assert not found and not self.dialogs, f"{where}: {found} {self.dialogs}"
        self.pages_checked += 1


async def seed(client: TestClient) -> list[str]:
    """Every way in, each carrying the corpus; returns the threads it made."""
    app = client.server.app
    for n, payload in enumerate(PAYLOADS):
        chat = 770_000 + n
        text = copy_update("text", n * 2, chat, payload)
        text["message"]["text"] = payload
        document = copy_update("document", n * 2 + 1, chat, payload)
        document["message"]["document"].update(file_name=payload, file_id=f"file-{n}")
        document["message"]["caption"] = payload[:1000]
        for update in (text, document):
            response = await post(client, traffic.telegram(update))
            assert response.status == 200, await response.text()
    await mail_in(client)
    await settled(client)
    return [t["_id"] for t in await raw_database_of(app[STORE]).threads.find({}).to_list()]


def copy_update(kind: str, n: int, chat: int, name: str) -> dict[str, Any]:
    update = copy.deepcopy(fixture("telegram", kind))
    update["update_id"] = 90_000_000 + n
    person = {"id": chat, "is_bot": False, "first_name": name[:200], "last_name": "x"}
    update["message"].update(
        message_id=500_000 + n, date=int(time.time()), chat={"id": chat, "type": "private", "first_name": name[:200]}
    )
    update["message"]["from"] = person
    return update


async def mail_in(client: TestClient) -> None:
    mail = EmailMessage()
    mail["From"] = Address(display_name=PAYLOADS[1], addr_spec="mallory@example.net")
    mail["To"] = OUR_ADDRESS
    mail["Subject"] = PAYLOADS[4] + " " + PAYLOADS[6]
    mail["Message-ID"] = "<xss-1@example.net>"
    mail.set_content("\n".join(PAYLOADS[:15]))
    mail.add_attachment(b"%PDF-1.4", maintype="application", subtype="pdf", filename=PAYLOADS[2])
    port = client.server.app[ADAPTERS]["email"].listener.port  # type: ignore[attr-defined]
    await aiosmtplib.send(mail, hostname="127.0.0.1", port=port, sender="mallory@example.net", recipients=[OUR_ADDRESS])


async def console_forms(client: TestClient, thread_id: str) -> None:
    """A colleague's hostile text through the console's forms (as the superadmin)."""
    token = await console_csrf(client)
    for path, form in (
        ("/console/shift", {"action": "start"}),
        (f"/console/threads/{thread_id}/take", {}),
        (f"/console/threads/{thread_id}/reply", {"text": PAYLOADS[1], "nonce": secrets.token_urlsafe(12)}),
        (f"/console/threads/{thread_id}/note", {"text": PAYLOADS[3]}),
        (f"/console/threads/{thread_id}/note", {"text": PAYLOADS[6]}),
        ("/admin/canned", {"shortcut": "xss", "text": PAYLOADS[5]}),
        ("/admin/canned", {"shortcut": "brk", "text": "</script><script>alert('canned')</script>"}),
        ("/admin/agents", {"login": "mallory", "name": PAYLOADS[2], "role": "agent", "capacity": "5"}),
        ("/admin/accounts", {"id": "hostile", "name": PAYLOADS[8], "admin": "boss"}),
        ("/admin/inboxes", {"channel": "telegram", "name": PAYLOADS[12], "token": "5:x", "webhook_secret": "s5"}),
        ("/admin/inboxes", {"channel": "telegram", "name": PAYLOADS[14], "token": "6:x", "webhook_secret": "s6"}),
    ):
        response = await client.post(path, data={**form, "csrf_token": token}, allow_redirects=False)
        assert response.status in (200, 303) and "error=" not in response.headers.get("Location", ""), (
            path,
            response.status,
            response.headers.get("Location"),
            await response.text(),
        )


async def hostile_logins(client: TestClient) -> None:
    """Failed logins whose names land in the audit log (and its CSV)."""
    base = f"http://127.0.0.1:{client.server.port}"
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as stranger:
        for name in [PAYLOADS[1], PAYLOADS[6], *CSV_PAYLOADS]:
            page = await (await stranger.get(base + "/login")).text()
            token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
            response = await stranger.post(base + "/login", data={"login": name, "password": "x", "csrf_token": token})
            assert response.status == 401


@pytest.fixture
async def hostile_router(embedded: Any, db_name: str, providers: Any, start_client: Any) -> TestClient:
    bot_api, graph_api, twilio = providers
    settings = every_channel(
        embedded.uri,
        db_name,
        bot_api.url,
        graph_api.url,
        twilio.url,
        email={"listen_port": free_port()},
        console={"login_attempts": 50},
        server={"public_url": ""},  # plain HTTP here: the session cookie must not be Secure
        nlu={"semantic": False},
    )
    client: TestClient = await start_client(settings)
    return client


async def test_the_xss_corpus_is_inert_everywhere_it_is_shown(hostile_router: TestClient, browser: Browser) -> None:
    client = hostile_router
    app, base = client.server.app, f"http://127.0.0.1:{client.server.port}"
    login, password = app[FIRST_ADMIN]
    threads = await seed(client)
    assert len(threads) == len(PAYLOADS) + 1  # one per Telegram chat, one e-mail
    await log_in(client, login, password)
    await console_forms(client, threads[0])
    await hostile_logins(client)

    inspector = await Inspector.open(browser)
    page = await log_in_page(await inspector.page(), base, login, password)
    await inspector.inert(page, "/console")
    for thread_id in threads:
        await page.goto(f"{base}/console?thread={thread_id}")
        await expect(page.locator("#history .item").first).to_be_visible()
        await inspector.inert(page, f"thread {thread_id}")
    # every payload reads literally in its thread: the message, the contact's name, the file's name
    for n, payload in enumerate(PAYLOADS):
        await page.goto(f"{base}/console?thread={await thread_of_chat(client, 770_000 + n)}")
        await expect(page.locator("#history .item__text").first).to_have_text(payload)
        await expect(page.locator("#history .attachment__name")).to_have_text(payload)
        await expect(page.locator("h1")).to_contain_text(payload[:200])
    mail_thread = await raw_database_of(app[STORE]).threads.find_one({"channel": "email"})
    await page.goto(f"{base}/console?thread={mail_thread['_id']}")
    await expect(page.locator("#history .item__subject")).to_contain_text(PAYLOADS[4] + " " + PAYLOADS[6])
    await expect(page.locator("#history .attachment__name")).to_have_text(PAYLOADS[2])
    await expect(page.locator("#history .item__text").first).to_contain_text(PAYLOADS[0])
    await inspector.inert(page, "the e-mail thread")

    # the first thread: the agent's reply, notes, and the canned replies in the reply box
    await page.goto(f"{base}/console?thread={threads[0]}")
    await expect(page.locator("#history .item--agent .item__text")).to_have_text(PAYLOADS[1])
    await expect(page.locator("#history", has_text=PAYLOADS[3])).to_have_count(1)
    await page.fill("#reply-text", "/")
    await page.locator("#reply-text").dispatch_event("input")
    await expect(page.locator("#canned-suggestions button")).to_have_count(2)
    await expect(page.locator("#canned-suggestions button", has_text="canned")).to_contain_text("</script>")
    await inspector.inert(page, "thread with replies, notes and canned suggestions")

    # the live feed: a new hostile message arrives over the socket while the thread is open
    await page.goto(f"{base}/console?thread={await thread_of_chat(client, 770_000)}")
    before = await page.locator("#history .item").count()
    live = copy_update("text", 500, 770_000, "live")
    live["message"]["text"] = PAYLOADS[11] + " live"
    assert (await post(client, traffic.telegram(live))).status == 200
    await expect(page.locator("#history .item")).to_have_count(before + 1, timeout=15_000)
    await expect(page.locator("#history .item__text").last).to_have_text(PAYLOADS[11] + " live")
    await inspector.inert(page, "live history update")
    await page.goto(f"{base}/console")
    queued = await page.locator("#queue .row").count()
    fresh = copy_update("text", 600, 779_999, PAYLOADS[2])
    fresh["message"]["text"] = PAYLOADS[9]
    assert (await post(client, traffic.telegram(fresh))).status == 200
    await settled(client)
    if await raw_database_of(app[STORE]).threads.count_documents({"status": "queued"}) > queued:
        await expect(page.locator("#queue .row")).to_have_count(queued + 1, timeout=15_000)
    await inspector.inert(page, "live queue update")

    # admin pages, and pages that echo the query string
    echo = quote(PAYLOADS[1])
    for path in (
        "/admin",
        "/admin/reports",
        "/admin/audit",
        "/admin/accounts",
        "/admin/account",
        "/admin/inboxes",
        f"/admin/contacts?q={quote(PAYLOADS[1][:100])}",
        f"/console?error={echo}",
        f"/admin?message={echo}",
        f"/admin/audit?actor={echo}&action={echo}",
        f"/admin/reports?since={echo}",
    ):
        await page.goto(base + path)
        await inspector.inert(page, path)
    await page.goto(f"{base}/admin")
    await expect(page.locator("main")).to_contain_text(PAYLOADS[2])  # the agent's name
    await expect(page.locator("main")).to_contain_text(PAYLOADS[5])  # a canned reply
    await page.goto(f"{base}/admin/inboxes")
    await expect(page.locator(".inbox-name", has_text="img id=xss11")).to_have_text(PAYLOADS[12])  # inboxes' names
    await expect(page.locator(".inbox-name", has_text="onfocus")).to_have_text(PAYLOADS[14])
    await page.goto(f"{base}/admin/audit")
    await expect(page.locator("main")).to_contain_text(PAYLOADS[1])  # a failed login's name
    await page.goto(f"{base}/admin/accounts")
    await expect(page.locator("main")).to_contain_text(PAYLOADS[8])
    anonymous = await Inspector.open(browser)
    login_page = await anonymous.page()
    await login_page.goto(f"{base}/login?account={echo}&lang={echo}")
    await anonymous.inert(login_page, "/login echoing its query")
    assert inspector.pages_checked >= len(threads) + 14

    await api_gives_texts_back(client, threads)
    await csv_downloads_hold_no_formulas(client)


async def thread_of_chat(client: TestClient, chat: int) -> str:
    db = raw_database_of(client.server.app[STORE])
    message = await db.messages.find_one({"direction": "in", "sender.address": str(chat)})
    assert message is not None
    return str(message["thread_id"])


async def api_gives_texts_back(client: TestClient, threads: list[str]) -> None:
    """The JSON API returns what the customers wrote, byte for byte (escaping is the renderer's job)."""
    token = await issue_token(client.server.app[STORE], "default", "xss", ["read"], "test")
    texts: set[str] = set()
    names: set[str] = set()
    for thread_id in threads:
        response = await client.get(f"/api/threads/{thread_id}", headers={"Authorization": f"Bearer {token}"})
        assert response.status == 200 and response.content_type == "application/json"
        for message in (await response.json())["messages"]:
            texts.add(message.get("text", ""))
            names.update(a.get("name", "") for a in message.get("attachments", []))
    assert set(PAYLOADS) <= texts
    assert set(PAYLOADS) <= names


async def csv_downloads_hold_no_formulas(client: TestClient) -> None:
    cells = 0
    for path in ("/admin/audit.csv", "/admin/reports.csv", "/admin/timesheet.csv"):
        response = await client.get(path)
        assert response.status == 200 and response.content_type == "text/csv", path
        for row in csv.reader(io.StringIO(await response.text())):
            for cell in row:
                cells += 1
                assert not FORMULA.match(cell) or NUMBER.match(cell), f"{path}: a formula cell {cell!r}"
    audit = {
        cell for row in csv.reader(io.StringIO(await (await client.get("/admin/audit.csv")).text())) for cell in row
    }
    for payload in CSV_PAYLOADS:  # the failed logins' names are there, as text
        assert f"'{payload}" in audit, payload
    assert cells > 50


async def test_the_corpus_is_inert_on_the_customers_chat_page_both_ways(client: TestClient, browser: Browser) -> None:
    """A customer writes the corpus in the web chat; an agent answers with it: both pages stay inert."""
    app, base = client.server.app, f"http://127.0.0.1:{client.server.port}"
    login, password = app[FIRST_ADMIN]  # type: ignore[misc]
    inspector = await Inspector.open(browser)
    customer = await inspector.page()
    await customer.goto(f"{base}/chat")
    await expect(customer.locator("#status")).to_have_text("Online")
    written = PAYLOADS[7:11]  # not the notes' texts (PAYLOADS[3], PAYLOADS[6])
    for payload in written:
        await customer.fill("#text", payload)
        await customer.keyboard.press("Enter")
    await expect(customer.locator(".msg--in")).to_have_count(4)
    await settled_thread(client)
    thread = await raw_database_of(app[STORE]).threads.find_one({"channel": "webchat"})
    await log_in(client, login, password)
    await console_forms(client, thread["_id"])  # take it, answer with PAYLOADS[1], notes (never shown to the customer)
    agent_reply = customer.locator(".msg--out", has_text="onerror")
    await expect(agent_reply.locator(".msg__text")).to_have_text(PAYLOADS[1])  # beside the agent's name
    await expect(customer.locator(".msg--in")).to_have_text(written)
    await inspector.inert(customer, "the customer's chat page")
    shown = await customer.locator("#log").inner_text()
    assert PAYLOADS[3] not in shown and PAYLOADS[6] not in shown  # private notes stay private
    agent = await log_in_page(await inspector.page(), base, login, password)
    await agent.goto(f"{base}/console?thread={thread['_id']}")
    await expect(agent.locator("#history .item--in .item__text")).to_have_text(written)
    await inspector.inert(agent, "the web chat thread in the console")


async def settled_thread(client: TestClient) -> None:
    db = raw_database_of(client.server.app[STORE])
    for _ in range(100):
        if await db.messages.count_documents({"direction": "in", "dispatch_state": {"$ne": "pending"}}) >= 4:
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the web chat messages were not dispatched")
