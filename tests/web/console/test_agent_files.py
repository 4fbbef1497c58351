"""An agent sends a file with a reply on the web chat, in Debian's headless Chromium: the visitor
sees the image in the chat and gets a document as a download, from an address signed for them
alone; the file is kept in the store's GridFS and erased with the contact."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from playwright.async_api import Browser, Page, expect

from bot.keys import STORE
from bot.services.agents import add_agent
from bot.services.contacts import erase_contact, find_contact
from conversations.agent_models import Role
from conversations.embedded import EmbeddedMongo
from conversations.thread_models import Thread
from tests import factories
from tests.conftest import make_settings
from tests.web.console.test_console_browser import agent_page

pytestmark = pytest.mark.browser


async def take_on_shift(page: Page, base: str, thread_id: str) -> None:
    """The agent starts their shift and takes the conversation: the reply form is theirs."""
    await page.click("#shift-start")
    await expect(page.locator("#presence")).to_contain_text("online")
    await page.goto(f"{base}/console?thread={thread_id}")
    await page.click("#take-thread")
    await expect(page.locator("#composer")).to_be_visible()


async def drawn_png(page: Page, width: int, height: int) -> bytes:
    """A real PNG the browser draws (so the browser can show it again)."""
    return base64.b64decode(
        await page.evaluate(
            "([w, h]) => { const c = document.createElement('canvas'); c.width = w; c.height = h;"
            " c.getContext('2d').fillRect(0, 0, w, h); return c.toDataURL('image/png').split(',')[1]; }",
            [width, height],
        )
    )


async def visitor_and_agent(client: TestClient, browser: Browser, question: str) -> tuple[Page, Page, Thread]:
    """A web chat visitor asks ``question``; admin Ola takes the conversation on her shift."""
    base, store = f"http://127.0.0.1:{client.server.port}", client.server.app[STORE]
    _, password = await add_agent(store, "default", "ola", name="Ola", role=Role.ADMIN)
    customer = await (await browser.new_context()).new_page()
    await customer.goto(f"{base}/chat")
    await customer.fill("#text", question)
    await customer.keyboard.press("Enter")
    await expect(customer.locator(".msg--system")).to_have_count(1)
    agent = await agent_page(browser, base, "ola", password)
    [thread] = await factories.threads(store)
    await take_on_shift(agent, base, thread.id)
    return customer, agent, thread


async def test_an_agent_sends_an_image_and_a_document_to_a_web_chat_visitor(
    client: TestClient, browser: Browser, tmp_path: object
) -> None:
    base, store = f"http://127.0.0.1:{client.server.port}", client.server.app[STORE]
    customer, agent, thread = await visitor_and_agent(client, browser, "can you send me the invoice?")
    png = await drawn_png(agent, 12, 9)
    await agent.set_input_files("#reply-file", files=[{"name": "photo.png", "mimeType": "image/png", "buffer": png}])
    await agent.fill("#reply-text", "Here is the photo")
    await agent.click("#send-reply")
    await expect(agent.locator("#reply-text")).to_have_value("")  # a fresh form swapped in: the next file goes there
    shown = customer.locator(".msg--out .msg__file img")
    await expect(shown).to_have_count(1)
    await customer.wait_for_function("() => document.querySelector('.msg__file img').naturalWidth === 12")

    await agent.set_input_files(
        "#reply-file", files=[{"name": "invoice.pdf", "mimeType": "application/pdf", "buffer": b"%PDF-1.4 invoice"}]
    )
    await agent.click("#send-reply")  # a file alone, no text
    link = customer.locator(".msg--out a.msg__file", has_text="invoice.pdf")
    await expect(link).to_have_count(1)
    href = await link.get_attribute("href")
    assert href is not None
    got = await customer.request.get(f"{base}{href}")
    assert got.status == 200 and await got.body() == b"%PDF-1.4 invoice"
    assert got.headers["content-disposition"].startswith("attachment;")
    forged = await customer.request.get(f"{base}{href.replace('signature=', 'signature=0')}")
    assert forged.status == 404
    await expect(agent.locator("#history .sent-file a", has_text="invoice.pdf")).to_have_count(1)
    in_console = await agent.request.get(
        f"{base}{await agent.locator('#history .sent-file a').last.get_attribute('href')}"
    )
    assert in_console.status == 200 and await in_console.body() == b"%PDF-1.4 invoice"
    assert await store.files.usage("default") == len(png) + len(b"%PDF-1.4 invoice")

    await customer.reload()  # the history shows the files again
    await expect(customer.locator(".msg--out a.msg__file")).to_have_count(2)
    await erase_contact(store, await find_contact(store, "default", thread.contact_id), "cli")
    assert await store.files.usage("default") == 0
    assert (await customer.request.get(f"{base}{href}")).status == 404


async def test_a_file_of_several_megabytes_goes_out_and_one_over_the_limit_is_refused_before_its_upload(
    embedded: EmbeddedMongo, db_name: str, start_client: Any, browser: Browser
) -> None:
    """Files are not held to the 1 MiB of an ordinary request: a signed-in agent's upload may be up
    to server.max_upload_bytes (2 MB here). A larger one is refused in the page, saying the limit,
    and by the router when the page's check is bypassed."""
    client = await start_client(make_settings(embedded.uri, db_name, server={"max_upload_bytes": 2_000_000}))
    base, store = f"http://127.0.0.1:{client.server.port}", client.server.app[STORE]
    customer, agent, thread = await visitor_and_agent(client, browser, "the contract please")

    contract = b"%PDF-1.4 " + b"c" * 1_500_000  # over the 1 MiB of server.client_max_size
    await agent.set_input_files(
        "#reply-file", files=[{"name": "contract.pdf", "mimeType": "application/pdf", "buffer": contract}]
    )
    await agent.click("#send-reply")
    await expect(customer.locator(".msg--out a.msg__file", has_text="contract.pdf")).to_have_count(1)
    await expect(agent.locator("#reply-text")).to_have_value("")
    assert await store.files.usage("default") == len(contract)

    huge = b"%PDF-1.4 " + b"h" * 2_100_000
    await agent.set_input_files(
        "#reply-file", files=[{"name": "huge.pdf", "mimeType": "application/pdf", "buffer": huge}]
    )
    await expect(agent.locator("#flash")).to_contain_text("2.0 MB")
    assert await agent.eval_on_selector("#reply-file", "input => input.files.length") == 0  # not sent

    form = {
        "csrf_token": await agent.get_attribute("#composer [name=csrf_token]", "value") or "",
        "nonce": await agent.get_attribute("#composer [name=nonce]", "value") or "",
        "file": {"name": "huge.pdf", "mimeType": "application/pdf", "buffer": huge},
    }
    bypassed = await agent.request.post(f"{base}/console/threads/{thread.id}/reply", multipart=form)
    assert bypassed.status == 413 and "2.0 MB" in await bypassed.text()
    assert await store.files.usage("default") == len(contract)
