"""Screenshots of the agent console (desktop, phone, Latvian and Russian), the conversation lists,
the reports, the account page and the website widget for the docs: docs/console-*.png,
docs/reports.png, docs/account-settings.png, docs/widget.png.

Run with ``.venv/bin/python scripts/screenshots.py`` (``... screenshots.py widget``: the widget's only); it starts a router on a throwaway embedded
store, fills it with a few conversations, and drives Debian's headless Chromium through Playwright.
"""

from __future__ import annotations

import asyncio
import random
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aiohttp import web
from aiohttp.test_utils import TestServer
from playwright.async_api import async_playwright

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.app import create_app
from bot.keys import PIPELINE, QUEUE, SHIFTS, STORE
from bot.router.webhooks.subscriptions import new_secret
from bot.services.accounts import create_account
from bot.services.agents import add_agent
from bot.settings import Settings
from bot.web.keys import SERVICES
from conversations.agent_models import Role, Shift
from conversations.embedded import EmbeddedMongo, free_port
from conversations.ids import new_id
from conversations.tenant_models import WebhookSubscription
from conversations.thread_models import Thread, ThreadStatus
from conversations.traffic import Identity, Inbound

DOCS = Path(__file__).resolve().parent.parent / "docs"
CUSTOMERS = [
    (
        "v-anna",
        "Anna Bērziņa",
        ["Hi! My parcel 58211 says delivered but it is not here.", "It was supposed to come yesterday."],
    ),
    ("v-mark", "Mark Taylor", ["Can I change the delivery address of order 7741?"]),
    ("v-ilze", "Ilze", ["<b>Urgent</b>: card charged twice <img src=x onerror=alert(1)>"]),
    ("v-john", "John", ["Do you ship to Lithuania?"]),
]


async def populate(app: object) -> None:
    store, queue, pipeline = app[STORE], app[QUEUE], app[PIPELINE]  # type: ignore[index]
    await store.agents.put_canned("default", "thanks", "Thank you for your patience! Anything else I can help with?")
    await store.agents.put_canned("default", "track", "You can track your parcel at any time on our website.")
    agent, _ = await add_agent(
        store, "default", "laura", name="Laura", role=Role.AGENT, teams=["support"], password="laura-demo-pass"
    )
    await add_agent(store, "default", "peteris", name="Pēteris", role=Role.AGENT, teams=["billing"], password="x" * 12)
    for visitor, name, texts in CUSTOMERS:
        for n, text in enumerate(texts):
            _, task = await pipeline.receive(
                Inbound("default", "webchat", f"{visitor}:{n}", Identity("webchat", visitor), text, sender_name=name)
            )
            await task
    await app[SHIFTS].start(agent)  # type: ignore[index]
    anna = (await store.queue.queued_threads("default"))[0]
    await store.threads.set_thread_fields((await store.queue.queued_threads("default"))[2].id, priority=2)
    await queue.take(agent, anna.id)
    await app[SERVICES].replies.answer(
        anna.id,
        agent,
        "Hello Anna, I am sorry to hear that. Let me check with the courier.",  # type: ignore[index]
        "demo-0001",
    )
    await queue.note(anna.id, agent, "Courier says: left at the reception desk. Ask her to check there.")
    await queue.set_labels(anna.id, agent, ["delivery", "vip"])
    return anna.id  # type: ignore[return-value]


async def populate_account(app: object) -> None:
    """A second business with its own Telegram bot and a CRM webhook, run by its admin."""
    store = app[STORE]  # type: ignore[index]
    await create_account(store, "corner-shop", "Corner Shop", "owner", password="owner-demo-pass")
    await store.accounts.set_account_channel(
        "corner-shop", "telegram", {"token": "7364001122:AAH-demo", "webhook_secret": "demo"}
    )
    # stored as the API would store it: the egress guard would look the made-up host up (no network here)
    await store.webhooks.create_webhook(
        WebhookSubscription(
            id=new_id("whs"),
            account_id="corner-shop",
            url="https://crm.example.com/omnirouter",
            events=["thread.created", "thread.assigned", "thread.resolved"],
            secret=new_secret(),
            created_at=datetime.now(UTC),
            description="CRM",
        )
    )


async def account_page(browser: object, base: str) -> None:
    page = await (await browser.new_context(viewport={"width": 1100, "height": 1500})).new_page()  # type: ignore[attr-defined]
    await page.goto(f"{base}/login?account=corner-shop")
    await page.fill("input[name=login]", "owner")
    await page.fill("input[name=password]", "owner-demo-pass")
    await page.click("button[type=submit]")
    await page.goto(f"{base}/admin/account")
    await page.fill("#new-token input[name=name]", "crm sync")
    await page.click("#new-token button")
    await page.screenshot(path=str(DOCS / "account-settings.png"), full_page=True)


async def populate_history(app: object) -> None:
    """Four weeks of earlier conversations, so the reports page has something to show."""
    store = app[STORE]  # type: ignore[index]
    agents = [a for a in await store.agents.list_agents("default") if a.role == Role.AGENT]
    rng = random.Random(2)
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    channels = ["whatsapp"] * 5 + ["webchat"] * 4 + ["telegram"] * 2 + ["email"] * 2 + ["sms"]
    reasons = ["no_nlu"] * 4 + ["low_confidence"] * 3 + ["handoff_intent"] * 2 + ["missed_call", "direct_channel"]
    threads = []
    for n in range(420):
        opened = today - timedelta(days=rng.randint(1, 27), hours=rng.randint(-10, 8), minutes=rng.randint(0, 59))
        fields: dict[str, object] = {}
        status = ThreadStatus.RESOLVED
        if rng.random() < 0.42:  # the bot kept it
            fields["resolved_at"] = opened + timedelta(minutes=rng.randint(1, 9))
        else:
            queued = opened + timedelta(seconds=rng.randint(20, 300))
            agent = rng.choice(agents)
            assigned = queued + timedelta(seconds=int(rng.lognormvariate(4.5, 0.9)))
            first = assigned + timedelta(seconds=int(rng.lognormvariate(4.2, 0.8)))
            fields.update(
                queued_at=queued,
                first_queued_at=queued,
                assigned_at=assigned,
                first_assigned_at=assigned,
                first_response_at=first,
                handoff_reason=rng.choice(reasons),
                last_assignee=agent.id,
                resolved_at=first + timedelta(seconds=int(rng.lognormvariate(7, 0.7))),
                next_response_breaches=int(rng.random() < 0.1),
            )
        threads.append(
            Thread(
                id=f"thr_hist{n}",
                account_id="default",
                contact_id=f"con_hist{n}",
                channel=rng.choice(channels),
                status=status,
                opened_at=opened,
                last_message_at=opened,
                **fields,
            )
        )  # type: ignore[arg-type]
    await store.threads.import_threads(threads)
    for agent in agents:
        for day in range(1, 28):
            if (today - timedelta(days=day)).weekday() < 5:
                start = today - timedelta(days=day) + timedelta(hours=8, minutes=rng.randint(0, 30))
                end = start + timedelta(hours=rng.choice([6, 7.5, 8, 8]))
                await store.agents.open_shift(
                    Shift(
                        id=f"shf_{agent.login}{day}",
                        account_id="default",
                        agent_id=agent.id,
                        agent_login=agent.login,
                        started_at=start,
                        open_key=agent.id,
                    )
                )
                await store.agents.close_shift(agent.id, end, None)


async def main() -> None:
    DOCS.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        embedded = EmbeddedMongo(Path(tmp))
        await embedded.start()
        settings = (
            Settings()
            .replace("store", mongodb_uri=embedded.uri, database="shots")
            .replace("server", public_url="https://chat.example.com")
            .replace("security", secret_key="00" * 32)
        )
        server = TestServer(create_app(settings))
        await server.start_server()
        try:
            if sys.argv[1:] == ["widget"]:
                await widget_only(server)
                return
            thread_id = await populate(server.app)
            await populate_account(server.app)
            base = f"http://127.0.0.1:{server.port}"
            async with async_playwright() as pw:
                browser = await pw.chromium.launch(
                    executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-gpu"]
                )
                page = await (await browser.new_context(viewport={"width": 1360, "height": 820})).new_page()
                await page.goto(f"{base}/login")
                await page.screenshot(path=str(DOCS / "console-login.png"))
                await page.fill("input[name=login]", "laura")
                await page.fill("input[name=password]", "laura-demo-pass")
                await page.click("button[type=submit]")
                await page.goto(f"{base}/console?thread={thread_id}")
                await page.wait_for_selector("#history .item--agent .delivery")
                await page.fill("#reply-text", "/t")
                await page.dispatch_event("#reply-text", "input")
                await page.wait_for_timeout(500)
                await page.screenshot(path=str(DOCS / "console-thread.png"))
                await page.click("button[name=lang][value=lv]")
                await page.goto(f"{base}/console?thread={thread_id}")
                await page.wait_for_timeout(500)
                await page.screenshot(path=str(DOCS / "console-thread-lv.png"))
                await page.click("button[name=lang][value=ru]")
                await page.goto(f"{base}/console?thread={thread_id}")
                await page.wait_for_timeout(500)
                await page.screenshot(path=str(DOCS / "console-thread-ru.png"))
                await page.click("button[name=lang][value=en]")
                await lists_and_phone_shots(page, browser, base, thread_id)
                await reports_shot(server.app, browser, base)
                await account_page(browser, base)
                await widget_shot(server.app, browser, base)
                await browser.close()
        finally:
            await server.close()
            await embedded.stop()
    print("wrote", ", ".join(sorted(p.name for p in DOCS.glob("*.png"))))


async def lists_and_phone_shots(page: object, browser: object, base: str, thread_id: str) -> None:
    """The conversation lists, and the console at a phone's width (the list, then the thread)."""
    await page.goto(f"{base}/console/conversations?view=all")  # type: ignore[attr-defined]
    await page.screenshot(path=str(DOCS / "console-lists.png"))  # type: ignore[attr-defined]
    await page.goto(f"{base}/console/search?q=order")  # type: ignore[attr-defined]
    await page.screenshot(path=str(DOCS / "console-search.png"))  # type: ignore[attr-defined]
    phone = await (await browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)).new_page()  # type: ignore[attr-defined]
    await phone.goto(f"{base}/login")
    await phone.fill("input[name=login]", "laura")
    await phone.fill("input[name=password]", "laura-demo-pass")
    await phone.click("button[type=submit]")
    await phone.wait_for_selector("#queue")
    await phone.screenshot(path=str(DOCS / "console-phone-list.png"))
    await phone.goto(f"{base}/console?thread={thread_id}")
    await phone.wait_for_selector("#history .item--agent")
    await phone.screenshot(path=str(DOCS / "console-phone-thread.png"))


async def reports_shot(app: object, browser: object, base: str) -> None:
    await populate_history(app)
    await add_agent(app[STORE], "default", "olga", name="Olga", role=Role.ADMIN, password="olga-demo-pass")  # type: ignore[index]
    page = await (await browser.new_context(viewport={"width": 1360, "height": 1500})).new_page()  # type: ignore[attr-defined]
    await page.goto(f"{base}/login")
    await page.fill("input[name=login]", "olga")
    await page.fill("input[name=password]", "olga-demo-pass")
    await page.click("button[type=submit]")
    await page.goto(f"{base}/admin/reports")
    await page.wait_for_selector("svg.chart")
    await page.screenshot(path=str(DOCS / "reports.png"), full_page=True)


SHOP_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Baltic Bikes</title>
<style>body{margin:0;font:16px/1.5 Georgia,serif;color:#1f2937;background:#fbfaf7}header{padding:18px 40px;
background:#14532d;color:#fff;font:700 22px system-ui}main{padding:30px 40px;max-width:560px}h1{font-size:34px}</style>
</head><body><header>Baltic Bikes</header><main><h1>City bikes, built to last</h1>
<p>Hand-assembled in Riga. Free delivery across the Baltics, 30-day returns.</p></main>
<script src="ROUTER/widget.js" data-account="default" async></script></body></html>"""


async def widget_shot(app: object, browser: object, base: str) -> None:
    """docs/widget.png: a business's page on another origin with the widget open, mid-conversation."""
    port = free_port()
    shop = web.Application()
    page_html = SHOP_PAGE.replace("ROUTER", base)
    shop.add_routes([web.get("/", lambda request: web.Response(text=page_html, content_type="text/html"))])
    site = TestServer(shop, host="127.0.0.1", port=port)
    await site.start_server()
    store = app[STORE]  # type: ignore[index]
    widget = {"sites": [f"http://localhost:{port}"], "color": "#14532d", "title": "Baltic Bikes", "greeting": ""}
    await store.accounts.set_account_fields("default", widget=widget)
    try:
        context = await browser.new_context(viewport={"width": 1000, "height": 720})  # type: ignore[attr-defined]
        page = await context.new_page()
        await page.goto(f"http://localhost:{port}/")
        await page.click(".omnirouter-launcher")
        chat = page.frame_locator(".omnirouter-panel iframe")
        await chat.locator("#text").fill("Hi! Does the Riga 3 come with a rear rack?")
        await chat.locator("#text").press("Enter")
        await chat.locator(".msg--system").wait_for(timeout=30_000)
        agent = await store.agents.agent_by_login("default", "laura")
        thread = (await store.queue.queued_threads("default"))[-1]
        await app[SHIFTS].start(agent)  # type: ignore[index]
        await app[QUEUE].take(agent, thread.id)  # type: ignore[index]
        await app[SERVICES].replies.answer(  # type: ignore[index]
            thread.id, agent, "Hello! It does: a steel rack for up to 25 kg is included.", "widget-1"
        )
        await chat.locator(".msg--agent").wait_for()
        await page.screenshot(path=str(DOCS / "widget.png"))
    finally:
        await site.close()


async def widget_only(server: TestServer) -> None:
    await add_agent(server.app[STORE], "default", "laura", name="Laura", password="laura-demo-pass")
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-gpu"])
        await widget_shot(server.app, browser, f"http://127.0.0.1:{server.port}")
        await browser.close()


if __name__ == "__main__":
    asyncio.run(main())
