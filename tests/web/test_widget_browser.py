"""The website widget in Debian's headless Chromium: a business's page on another origin (a small
aiohttp server on ``localhost``, the router on ``127.0.0.1``) embeds the chat with widget.js."""

from __future__ import annotations

import asyncio
import re
import struct
import zlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from playwright.async_api import Browser, FileChooser, Frame, FrameLocator, Page, WebSocketRoute, expect

from bot.handlers.webchat.embedding import identity_secret_name, user_hash
from bot.keys import QUEUE, STORE
from bot.services.agents import add_agent
from bot.web.keys import SERVICES
from conversations.agent_models import Role
from conversations.embedded import free_port
from conversations.models import utcnow
from conversations.thread_models import ThreadStatus
from tests import factories

pytestmark = pytest.mark.browser
FIRST_ANSWER = 60_000  # ms: the first answer, on a machine as loaded as a whole test run in parallel with others

SHOP_PAGE = """<!doctype html><html lang="{lang}"><head><meta charset="utf-8"><title>Shop</title></head>
<body><main><h1>Shop</h1><p>Our products.</p><a href="#top" id="first-link">Top</a></main>
<script>window.seen = []; window.addEventListener("message", (e) => window.seen.push(e.origin));</script>
{frames}
<script src="{router}/widget.js" data-account="default" async></script>
</body></html>"""

# a page of a third origin that tries to talk to the widget's iframe and to the shop's page as if it
# were the chat
INTRUDER = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>x</title></head><body><script>
window.addEventListener("message", () => {});
function forge() {
  parent.postMessage({ type: "omnirouter:message", message: { text: "forged" } }, "*");
  parent.postMessage({ type: "omnirouter:close" }, "*");
  for (let i = 0; i < parent.frames.length; i++) {
    parent.frames[i].postMessage({ type: "omnirouter:user", user: { name: "Mallory" } }, "*");
  }
}
</script></body></html>"""


@dataclass
class Site:
    """The business's web server: its pages name the router's widget.js."""

    origin: str  # http://localhost:PORT
    other: str  # the same server as http://127.0.0.1:PORT: a third origin


@pytest.fixture
async def site(client: TestClient) -> AsyncIterator[Site]:
    router = f"http://127.0.0.1:{client.server.port}"
    port = free_port()

    async def shop(request: web.Request) -> web.Response:
        frames = f'<iframe id="intruder" src="http://127.0.0.1:{port}/intruder" title="ad"></iframe>'
        page = SHOP_PAGE.format(
            lang=request.query.get("lang", "en"), router=router, frames=frames if "intruder" in request.query else ""
        )
        return web.Response(text=page, content_type="text/html")

    async def intruder(request: web.Request) -> web.Response:
        return web.Response(text=INTRUDER, content_type="text/html")

    app = web.Application()
    app.add_routes([web.get("/", shop), web.get("/intruder", intruder)])
    server = TestServer(app, host="127.0.0.1", port=port)
    await server.start_server()
    try:
        yield Site(f"http://localhost:{port}", f"http://127.0.0.1:{port}")
    finally:
        await server.close()


async def eventually(check: Callable[[], bool], seconds: float = 5.0) -> None:
    for _ in range(int(seconds * 20)):
        if check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("not within 5 s")


async def allow(client: TestClient, *sites: str, **look: object) -> None:
    widget = {"sites": list(sites), "color": "#aa3300", "title": "Shop help", "greeting": "Hello from the shop!"}
    await client.server.app[STORE].accounts.set_account_fields("default", widget={**widget, **look})


def local_only(page: Page, ports: tuple[int, ...]) -> list[str]:
    """Every address the page asks for that is not one of the test's servers (fills as it runs)."""
    strays: list[str] = []
    allowed = tuple(f"//{host}:{port}/" for host in ("127.0.0.1", "localhost") for port in ports)
    page.on("request", lambda r: None if any(a in r.url for a in allowed) else strays.append(r.url))
    return strays


async def test_a_visitor_on_an_allowed_site_chats_through_the_widget(
    client: TestClient, site: Site, browser: Browser
) -> None:
    await allow(client, site.origin)
    context = await browser.new_context()
    page = await context.new_page()
    strays = local_only(page, (client.server.port, int(site.origin.rsplit(":", 1)[1])))
    await page.goto(f"{site.origin}/")
    launcher = page.locator(".omnirouter-launcher")
    await expect(launcher).to_be_visible()
    await expect(launcher).to_have_attribute("aria-expanded", "false")
    await page.evaluate("() => { window.got = []; omnirouter.on('message', (m) => window.got.push(m)); }")
    await page.wait_for_function("() => document.querySelector('.omnirouter-panel iframe')")

    await launcher.click()
    chat = page.frame_locator(".omnirouter-panel iframe")
    await expect(launcher).to_have_attribute("aria-expanded", "true")
    await expect(chat.locator("h1")).to_have_text("Shop help")
    await expect(chat.locator("#empty strong")).to_have_text("Hello from the shop!")
    await expect(chat.locator("#status")).to_have_text("Online")
    await expect(chat.locator("#text")).to_be_focused()
    await page.evaluate("() => { omnirouter.setUser({ name: 'Dana Shopper' }); omnirouter.setLabel('from-shop'); }")
    await chat.locator("#text").fill("where is my order?")
    await chat.locator("#text").press("Enter")
    await expect(chat.locator(".msg--system")).to_contain_text("A member of our team will reply", timeout=FIRST_ANSWER)
    await page.wait_for_function("() => window.got.length === 1")
    assert (await page.evaluate("() => window.got[0].sender")) == "system"

    await chat.locator("#text").press("Escape")  # closes; the keyboard is back on the launcher
    await expect(page.locator(".omnirouter-panel")).to_be_hidden()
    await expect(launcher).to_be_focused()
    store = client.server.app[STORE]
    (thread,) = await factories.threads(store)
    reply = await client.post(f"/api/threads/{thread.id}/replies", json={"id": "r1", "text": "It ships today."})
    assert reply.status == 202, await reply.text()
    await expect(page.locator(".omnirouter-badge")).to_have_text("1")  # unread while closed
    await expect(launcher).to_have_attribute("aria-label", "Open chat (unread messages: 1)")
    await page.wait_for_function("() => window.got.length === 2")
    assert (await page.evaluate("() => window.got[1].text")) == "It ships today."

    await launcher.press("Enter")
    await expect(chat.locator(".msg--out", has_text="It ships today.")).to_be_visible()
    await expect(page.locator(".omnirouter-badge")).to_be_hidden()
    await context.close()

    (inbound,) = await factories.messages(store, direction="in")
    assert inbound.sender.get("name") == "Dana Shopper"
    (labelled,) = await factories.threads(store)
    assert labelled.labels == ["from-shop"]
    assert strays == []


async def test_a_site_not_allowed_gets_no_widget_and_cannot_frame_the_chat(
    client: TestClient, site: Site, browser: Browser
) -> None:
    await allow(client, "https://shop.example")  # another site, not this one
    context = await browser.new_context()
    page = await context.new_page()
    warnings: list[str] = []
    page.on("console", lambda m: warnings.append(m.text) if m.type == "warning" else None)
    await page.goto(f"{site.origin}/")
    await eventually(lambda: any("may not embed" in w for w in warnings))
    assert await page.locator(".omnirouter-launcher").count() == 0
    assert await page.evaluate("() => document.querySelectorAll('iframe').length") == 0

    # a page that frames the chat itself, naming itself as the allowed parent, is refused by the browser
    router = f"http://127.0.0.1:{client.server.port}"
    blocked: list[str] = []
    page.on("console", lambda m: blocked.append(m.text) if "frame-ancestors" in m.text else None)
    await page.evaluate(
        "(src) => { const f = document.createElement('iframe'); f.src = src; document.body.appendChild(f); }",
        f"{router}/chat/embed?parent={site.origin}",
    )
    await eventually(lambda: len(blocked) > 0)
    frame = page.frames[-1]
    assert await frame.locator("#text").count() == 0  # nothing of the chat was shown
    await context.close()


async def test_the_widget_listens_to_its_own_chat_only_and_the_chat_to_its_own_site_only(
    client: TestClient, site: Site, browser: Browser
) -> None:
    await allow(client, site.origin)
    context = await browser.new_context()
    page = await context.new_page()
    await page.goto(f"{site.origin}/?intruder=1&lang=lv")  # a Latvian page
    await page.wait_for_function("() => window.omnirouter")
    await expect(page.locator(".omnirouter-launcher")).to_have_attribute("aria-label", "Atvērt tērzēšanu")
    await page.evaluate("() => { window.got = []; omnirouter.on('message', (m) => window.got.push(m)); }")
    await page.locator(".omnirouter-launcher").click()
    chat = page.frame_locator(".omnirouter-panel iframe")
    await expect(chat.locator("#status")).to_have_text("Tiešsaistē")
    await expect(chat.locator("html")).to_have_attribute("lang", "lv")

    intruder = next(f for f in page.frames if f.url.endswith("/intruder"))
    await intruder.evaluate("() => forge()")
    await page.wait_for_function(f"() => window.seen.includes('{site.other}')")  # the forgeries arrived
    await expect(page.locator(".omnirouter-panel")).to_be_visible()  # the forged close was ignored
    assert await page.evaluate("() => window.got") == []  # and so was the forged message
    await chat.locator("#text").fill("hello")
    await chat.locator("#text").press("Enter")
    await expect(chat.locator(".msg--system")).to_have_count(1, timeout=FIRST_ANSWER)
    await context.close()

    (inbound,) = await factories.messages(client.server.app[STORE], direction="in")
    assert inbound.sender.get("name") != "Mallory"  # the intruder could not name the visitor


async def test_a_returning_visitor_sees_past_conversations_and_who_answered(
    client: TestClient, site: Site, browser: Browser
) -> None:
    await allow(client, site.origin)
    app = client.server.app
    store = app[STORE]
    agent = await factories.agent(store, "ava berzina", online=True)  # named "Ava Berzina"
    context = await browser.new_context()
    page = await context.new_page()
    await page.goto(f"{site.origin}/")
    await page.locator(".omnirouter-launcher").click()
    chat = page.frame_locator(".omnirouter-panel iframe")
    await chat.locator("#text").fill("my parcel is late")
    await chat.locator("#text").press("Enter")
    await expect(chat.locator(".msg--system")).to_have_count(1, timeout=FIRST_ANSWER)
    (thread,) = await factories.threads(store)
    await app[QUEUE].take(agent, thread.id)
    await app[SERVICES].replies.answer(thread.id, agent, "Found it: it arrives tomorrow.", "n1")
    reply = chat.locator(".msg--agent")
    await expect(reply).to_contain_text("Found it")
    await expect(reply.locator(".msg__who")).to_have_text("AAva Berzina")  # the initial, then the name
    await app[QUEUE].resolve(thread.id, agent)

    await page.reload()  # another visit: the chat finds the visitor again through the site's storage
    await page.locator(".omnirouter-launcher").click()
    chat = page.frame_locator(".omnirouter-panel iframe")
    await expect(chat.locator(".msg--in")).to_have_text("my parcel is late")
    await expect(chat.locator(".msg--agent .msg__who")).to_have_text("AAva Berzina")
    await expect(chat.locator(".msg--resolved")).to_have_text("This conversation was resolved")
    await expect(chat.locator(".msg").last).to_have_class(re.compile("msg--resolved"))
    await context.close()


async def test_what_a_visitor_types_the_moment_the_chat_opens_is_kept(
    client: TestClient, site: Site, browser: Browser
) -> None:
    # opened while the chat was still loading, the embedding page used to move the keyboard into the
    # frame a moment after the visitor had: keys typed in between went nowhere (1 visit in 20)
    await allow(client, site.origin)
    context = await browser.new_context()
    page = await context.new_page()
    lost = []
    for visit in range(30):
        await page.goto(f"{site.origin}/?visit={visit}")
        await page.locator(".omnirouter-launcher").click()
        box = page.frame_locator(".omnirouter-panel iframe").locator("#text")
        await expect(box).to_be_editable()  # as a visitor sees: a greyed-out box takes no keys
        await box.press_sequentially("hello")
        if await box.input_value() != "hello":
            lost.append(visit)
    assert lost == []
    await context.close()


AXE = Path(__file__).resolve().parent / "vendor" / "node_modules" / "axe-core" / "axe.min.js"
SERIOUS = """async (include) => {
  const found = await axe.run(include ? { include } : document, { resultTypes: ["violations"] });
  return found.violations.filter((v) => v.impact === "serious" || v.impact === "critical")
    .map((v) => `${v.id}: ${v.nodes.map((n) => n.target.join(" ")).join(", ")}`);
}"""


async def serious_violations(where: Page | Frame, include: list[list[str]] | None = None) -> list[str]:
    """What axe-core finds of serious or critical impact (in ``include`` only, when given)."""
    assert AXE.exists(), "axe-core is missing: `make test` installs it (npm ci in tests/web/vendor)"
    await where.add_script_tag(path=str(AXE))
    found: list[str] = await where.evaluate(SERIOUS, include)
    return found


async def test_the_widget_is_usable_by_keyboard_and_screen_reader_and_fills_a_phone(
    client: TestClient, site: Site, browser: Browser
) -> None:
    await allow(client, site.origin)
    store = client.server.app[STORE]
    agent = await factories.agent(store, "ava", online=True)
    context = await browser.new_context()
    page = await context.new_page()
    await page.goto(f"{site.origin}/")
    launcher = page.locator(".omnirouter-launcher")
    await expect(launcher).to_be_visible()
    ours = [[".omnirouter-launcher"], [".omnirouter-panel"]]
    assert await serious_violations(page, ours) == []

    await page.keyboard.press("Tab")  # the page's own link first, then the launcher
    await page.keyboard.press("Tab")
    await expect(launcher).to_be_focused()
    await page.keyboard.press("Enter")
    chat = page.frame_locator(".omnirouter-panel iframe")
    await expect(chat.locator("#text")).to_be_focused()
    await page.keyboard.type("is this accessible?")
    await page.keyboard.press("Enter")
    await expect(chat.locator(".msg--system")).to_have_count(1, timeout=FIRST_ANSWER)
    (thread,) = await factories.threads(store)
    await client.server.app[QUEUE].take(agent, thread.id)
    await client.server.app[SERVICES].replies.answer(thread.id, agent, "Yes, it is.", "n1")
    await expect(chat.locator(".msg--agent")).to_have_count(1)
    frame = next(f for f in page.frames if "/chat/embed" in f.url)
    assert await serious_violations(frame) == []
    assert await serious_violations(page, ours) == []
    await page.keyboard.press("Escape")
    await expect(page.locator(".omnirouter-panel")).to_be_hidden()
    await expect(launcher).to_be_focused()

    await page.set_viewport_size({"width": 390, "height": 844})  # a phone: the open widget fills the screen
    await page.keyboard.press("Enter")
    box = await page.locator(".omnirouter-panel").bounding_box()
    assert box == {"x": 0, "y": 0, "width": 390, "height": 844}
    await expect(chat.locator("#close")).to_be_visible()  # and closes by its own button
    await chat.locator("#close").click()
    await expect(page.locator(".omnirouter-panel")).to_be_hidden()
    await context.close()


SECRET = "the-shop-server-knows-this"  # the site's server and the router share it


async def vouched_for(client: TestClient, user_id: str) -> str:
    """The account's identity secret set; the page script with which the site vouches for ``user_id``."""
    await client.server.app[STORE].secrets.replace_sealed_secret(identity_secret_name("default"), SECRET)
    return f"() => omnirouter.setUser({{ user_id: '{user_id}', user_hash: '{user_hash(SECRET, user_id)}' }})"


async def open_widget(
    browser: Browser, site: Site, signed_in: str | None = None, socket: Callable[[WebSocketRoute], None] | None = None
) -> tuple[Page, FrameLocator]:
    """A new browser on the shop's page (its chat socket routed through ``socket`` if given), the
    site's user named first if ``signed_in``, the widget opened."""
    page = await (await browser.new_context()).new_page()
    if socket is not None:
        await page.route_web_socket(re.compile(r".*/webchat/ws.*"), socket)
    await page.goto(f"{site.origin}/")
    await page.wait_for_function("() => window.omnirouter")
    if signed_in is not None:
        await page.evaluate(signed_in)
    await page.locator(".omnirouter-launcher").click()
    return page, page.frame_locator(".omnirouter-panel iframe")


async def write(chat: FrameLocator, text: str) -> None:
    """Write ``text`` once the chat is online; returns when the router's notice is shown."""
    await expect(chat.locator("#status")).to_have_text("Online")
    await chat.locator("#text").fill(text)
    await chat.locator("#text").press("Enter")
    await expect(chat.locator(".msg--system")).to_have_count(1, timeout=FIRST_ANSWER)


async def test_a_user_the_site_vouches_for_finds_their_chat_in_another_browser(
    client: TestClient, site: Site, browser: Browser
) -> None:
    await allow(client, site.origin)
    signed_in = await vouched_for(client, "u-7")
    laptop, chat = await open_widget(browser, site, signed_in)
    await write(chat, "ordered on my laptop")
    await laptop.context.close()

    phone, chat = await open_widget(browser, site)  # another device: nothing kept from the laptop
    await expect(chat.locator("#status")).to_have_text("Online")
    await expect(chat.locator(".msg")).to_have_count(0)  # a stranger until the site vouches
    await phone.evaluate(signed_in)
    await expect(chat.locator(".msg--in")).to_have_text("ordered on my laptop")
    await phone.context.close()


async def test_a_message_written_while_the_sites_user_is_identified_joins_their_conversation(
    client: TestClient, site: Site, browser: Browser
) -> None:
    """The router's answer to the chat's "identify" is held back 1.5 s (a loaded router): what the
    visitor writes meanwhile waits for it and goes into the user's conversation, which their other
    device then shows. Sent at once, it landed in an anonymous conversation the chat dropped."""
    await allow(client, site.origin)
    signed_in = await vouched_for(client, "u-9")

    def slow_to_identify(route: WebSocketRoute) -> None:
        router = route.connect_to_server()

        def to_router(message: str | bytes) -> None:
            if isinstance(message, str) and '"identify"' in message:
                asyncio.get_running_loop().call_later(1.5, router.send, message)
            else:
                router.send(message)

        route.on_message(to_router)

    laptop, chat = await open_widget(browser, site, signed_in, slow_to_identify)
    await write(chat, "written before the router knew me")
    await expect(chat.locator(".msg--in")).to_have_text("written before the router knew me")
    await laptop.context.close()

    phone, chat = await open_widget(browser, site, signed_in)  # the user's other device finds the message
    await expect(chat.locator(".msg--in")).to_have_text("written before the router knew me")
    await phone.context.close()
    assert len(await factories.threads(client.server.app[STORE])) == 1  # no anonymous conversation beside it


PRIVACY = "https://shop.example/privacy"
PRECHAT = {"enabled": True, "name": True, "email": True, "phone": False, "consent": True, "privacy_url": PRIVACY}


async def open_chat(page: Page) -> FrameLocator:
    await page.wait_for_function("() => document.querySelector('.omnirouter-panel iframe')")
    await page.locator(".omnirouter-launcher").click()
    return page.frame_locator(".omnirouter-panel iframe")


async def test_a_visitor_fills_the_pre_chat_form_once_in_their_language(
    client: TestClient, site: Site, browser: Browser
) -> None:
    await allow(client, site.origin, prechat=PRECHAT)
    context = await browser.new_context()
    await context.route(
        f"{PRIVACY}*", lambda route: route.fulfill(body="our privacy notice", content_type="text/plain")
    )
    page = await context.new_page()
    await page.goto(f"{site.origin}/?lang=lv")
    chat = await open_chat(page)
    form = chat.locator("#prechat")
    await expect(form).to_be_visible()
    await expect(chat.locator("#composer")).to_be_hidden()
    await expect(chat.locator("#prechat-title")).to_have_text("Pirms sākam")
    await expect(chat.locator("#prechat-name")).to_be_focused()
    await expect(chat.locator("#prechat-phone")).to_be_hidden()  # not asked by this account
    await expect(chat.locator("#prechat-email")).to_have_attribute("aria-required", "true")
    frame = next(f for f in page.frames if "/chat/embed" in f.url)
    assert await serious_violations(frame) == []

    await chat.locator("#prechat-name").fill("Dana")
    await chat.locator("#prechat-email").fill("dana@")
    await chat.locator("#prechat-consent").check()
    await chat.locator("#prechat button[type=submit]").click()
    error = chat.locator("#prechat-email-error")
    await expect(error).to_have_text("Lūdzu, ierakstiet e-pasta adresi, piemēram, name@example.com.")
    await expect(chat.locator("#prechat-email")).to_have_attribute("aria-invalid", "true")
    await expect(chat.locator("#prechat-email")).to_be_focused()
    assert await serious_violations(frame) == []  # the error shown, the form still reads well

    privacy = chat.locator("#prechat-privacy")
    await expect(privacy).to_have_attribute("target", "_blank")
    async with context.expect_page() as opened:
        await privacy.click()
    notice = await opened.value
    assert notice.url == PRIVACY  # in a new tab; the chat stays
    await notice.close()

    await chat.locator("#prechat-email").fill("dana@example.com")
    await chat.locator("#prechat-consent").uncheck()
    await chat.locator("#prechat button[type=submit]").click()
    await expect(chat.locator("#prechat-consent-error")).to_have_text("Lūdzu, piekrītiet, lai turpinātu.")
    await chat.locator("#prechat-consent").check()
    await chat.locator("#prechat button[type=submit]").click()
    await expect(form).to_be_hidden()
    await expect(chat.locator("#text")).to_be_focused()
    await chat.locator("#text").fill("where is my order?")
    await chat.locator("#text").press("Enter")
    await expect(chat.locator(".msg--system")).to_have_count(1, timeout=FIRST_ANSWER)

    await page.reload()  # back another day: not asked again
    chat = await open_chat(page)
    await expect(chat.locator(".msg--in")).to_have_text("where is my order?")
    await expect(chat.locator("#composer")).to_be_visible()
    await expect(chat.locator("#prechat")).to_be_hidden()
    await context.close()

    store = client.server.app[STORE]
    (inbound,) = await factories.messages(store, direction="in")
    assert inbound.sender.get("name") == "Dana"  # the name goes with their messages
    contact = await store.contacts.get_contact(inbound.contact_id)
    assert contact is not None and contact.name == "Dana" and contact.prechat is not None
    assert contact.prechat["consent"]["privacy_url"] == PRIVACY
    assert await store.contacts.contact_by_identity("default", "email", "dana@example.com") == contact.id


async def test_a_user_the_site_vouches_for_skips_the_pre_chat_form(
    client: TestClient, site: Site, browser: Browser
) -> None:
    await allow(client, site.origin, prechat=PRECHAT)
    await client.server.app[STORE].secrets.replace_sealed_secret(identity_secret_name("default"), "k")
    context = await browser.new_context()
    page = await context.new_page()
    await page.goto(f"{site.origin}/")
    await page.wait_for_function("() => window.omnirouter")
    await page.evaluate(
        f"() => omnirouter.setUser({{ name: 'Dana', user_id: 'u-7', user_hash: '{user_hash('k', 'u-7')}' }})"
    )
    chat = await open_chat(page)
    await page.wait_for_function("() => (localStorage.getItem('omnirouter.visitor.default') || '').startsWith('u')")
    await expect(chat.locator("#composer")).to_be_visible()  # once the router knows the user
    await expect(chat.locator("#prechat")).to_be_hidden()
    await chat.locator("#text").fill("signed in already")
    await chat.locator("#text").press("Enter")
    await expect(chat.locator(".msg--system")).to_have_count(1, timeout=FIRST_ANSWER)
    await context.close()


async def test_out_of_hours_the_widget_takes_a_message_and_an_e_mail_instead_of_a_chat(
    client: TestClient, site: Site, browser: Browser
) -> None:
    await allow(client, site.origin)
    app = client.server.app
    tomorrow = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")[(utcnow() + timedelta(days=1)).weekday()]
    await app[QUEUE].set_routing("default", business_hours=f"{tomorrow} 09:00-17:00", timezone="Europe/Riga")
    context = await browser.new_context()
    page = await context.new_page()
    await page.goto(f"{site.origin}/?lang=ru")
    chat = await open_chat(page)
    form = chat.locator("#offline")
    await expect(form).to_be_visible()
    await expect(chat.locator("#composer")).to_be_hidden()
    await expect(chat.locator("#offline-title")).to_have_text("Сейчас мы не на связи")
    await expect(chat.locator("#offline-hours")).to_contain_text(f"{tomorrow} 09:00-17:00 (Europe/Riga)")
    frame = next(f for f in page.frames if "/chat/embed" in f.url)
    assert await serious_violations(frame) == []

    await chat.locator("#offline-name").fill("Ilze")
    await chat.locator("#offline-email").fill("ilze.example.lv")
    await chat.locator("#offline-text").fill("Please call me about my order 1234")
    await chat.locator("#offline button[type=submit]").click()
    await expect(chat.locator("#offline-email-error")).to_have_text(
        "Пожалуйста, укажите адрес эл. почты, например name@example.com."
    )
    await chat.locator("#offline-email").fill("ilze@example.lv")
    await expect(chat.locator("#offline-email")).to_have_value("ilze@example.lv")
    await expect(chat.locator("#offline-email-error")).to_be_hidden()  # corrected: no longer said wrong
    await expect(chat.locator("#offline-email")).not_to_have_attribute("aria-invalid", "true")
    await chat.locator("#offline button[type=submit]").click()
    sent = chat.locator("#offline-sent")
    await expect(sent).to_contain_text("ilze@example.lv")  # told how and when the answer comes
    await expect(sent).to_contain_text("Спасибо")
    await expect(form).to_be_hidden()
    await context.close()

    store = app[STORE]
    for _ in range(300):  # the visitor is answered once the message is stored; the queue takes it next
        (thread,) = await factories.threads(store)
        if thread.status == ThreadStatus.QUEUED:
            break
        await asyncio.sleep(0.1)
    assert thread.status == ThreadStatus.QUEUED and thread.escalation_reason == "offline_form"
    (message,) = await factories.messages(store, direction="in")
    assert message.text == "Please call me about my order 1234"
    assert await store.contacts.contact_by_identity("default", "email", "ilze@example.lv") == thread.contact_id


def tiny_png() -> bytes:
    """A real 1×1 PNG, so the browsers can draw it."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00\xaa\x33\x00"))
        + chunk(b"IEND", b"")
    )


async def test_a_visitor_sends_an_image_the_agent_sees_it_and_a_refused_file_says_why(
    client: TestClient, site: Site, browser: Browser
) -> None:
    await allow(client, site.origin)
    base = f"http://127.0.0.1:{client.server.port}"
    _, password = await add_agent(client.server.app[STORE], "default", "ava", name="Ava", role=Role.AGENT)
    context = await browser.new_context()
    page = await context.new_page()
    # the browser is told to hand file choosers to the test before the chat's frame exists: asked
    # only around the click (expect_file_chooser), the frame may not know it yet on a loaded machine
    choosers: asyncio.Queue[FileChooser] = asyncio.Queue()
    page.on("filechooser", choosers.put_nowait)
    await page.goto(f"{site.origin}/?lang=lv")
    chat = await open_chat(page)
    await expect(chat.locator("#status")).to_have_text("Tiešsaistē")
    attach = chat.locator("#attach")
    await expect(attach).to_have_attribute("aria-label", "Sūtīt failu vai attēlu")
    await expect(chat.locator("#text")).to_be_focused()  # the chat opened (and took the cursor)
    await page.keyboard.press("Shift+Tab")  # the attach button is in the tab order, labelled
    await expect(attach).to_be_focused()
    await page.keyboard.press("Enter")
    chooser = await asyncio.wait_for(choosers.get(), timeout=30)
    await chooser.set_files({"name": "parcel.png", "mimeType": "image/png", "buffer": tiny_png()})
    image = chat.locator(".msg--in img")
    await expect(image).to_have_attribute("alt", "parcel.png")
    await expect(chat.locator(".msg--in .msg__meta")).to_have_count(0)  # kept
    # the visitor sees it: the image's bytes come on a request of their own, after the element
    await image.evaluate(
        "(img) => img.complete || new Promise((done) => { img.onload = img.onerror = () => done(true); })"
    )
    assert await image.evaluate("(img) => img.complete && img.naturalWidth") == 1

    await attach.click()
    page_file = {"name": "page.html", "mimeType": "text/html", "buffer": b"<script>alert(1)</script>"}
    await (await asyncio.wait_for(choosers.get(), timeout=30)).set_files(page_file)
    await expect(chat.locator("#notice")).to_have_text(
        "Šādu failu nevar nosūtīt: sūtiet attēlu, PDF, tekstu vai Office dokumentu."
    )
    await expect(chat.locator(".msg--in")).to_have_count(1)  # the refused file is not shown as sent
    frame = next(f for f in page.frames if "/chat/embed" in f.url)
    assert await serious_violations(frame) == []

    agent = await (await browser.new_context()).new_page()
    await agent.goto(f"{base}/login")
    await agent.fill("input[name=login]", "ava")
    await agent.fill("input[name=password]", password)
    await agent.click("button[type=submit]")
    await agent.click("#shift-start")
    await agent.locator("#queue .row button").click()  # take it
    preview = agent.locator("#history .attachment__preview img")
    await expect(preview).to_have_attribute("alt", "parcel.png")
    await agent.wait_for_function(
        "() => document.querySelector('#history .attachment__preview img').naturalWidth === 1"
    )
    await agent.context.close()
    await context.close()
