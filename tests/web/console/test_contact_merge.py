"""Merging the customer beside the conversation with another contact, and undoing it, in Debian's
headless Chromium; the CSRF token, bad input and another account's contacts, from both sides."""

from __future__ import annotations

import re

import pytest
from aiohttp.test_utils import TestClient
from playwright.async_api import Browser, expect

from bot.keys import PIPELINE, STORE
from bot.services.accounts import create_account
from bot.services.agents import add_agent
from conversations.agent_models import Role
from conversations.traffic import Identity, Inbound
from tests import factories
from tests.web.console.test_console import console_csrf, log_in
from tests.web.console.test_console_browser import agent_page

pytestmark = pytest.mark.browser
PASSWORD = "correct horse battery"


async def customer_writes(client: TestClient, channel: str, address: str, name: str) -> str:
    inbound = Inbound("default", channel, f"{address}-1", Identity(channel, address), "where is my order?", name)
    recorded, task = await client.server.app[PIPELINE].receive(inbound)
    assert task is not None
    await task
    return recorded.thread.id


async def test_an_agent_merges_two_contacts_and_undoes_it(client: TestClient, browser: Browser) -> None:
    base, store = f"http://127.0.0.1:{client.server.port}", client.server.app[STORE]
    first = await customer_writes(client, "webchat", "v-marta", "Marta")
    second = await customer_writes(client, "email", "marta.k@example.com", "Marta Kalniņa")
    _, password = await add_agent(store, "default", "ivo", name="Ivo", role=Role.AGENT)
    page = await agent_page(browser, base, "ivo", password)
    await page.set_viewport_size({"width": 390, "height": 844})  # a phone

    await page.goto(f"{base}/console?thread={first}")
    await expect(page.locator("#past-conversations li")).to_have_count(1)
    await page.click("#merge-contact")
    await page.fill("#merge-query", "example.com")
    await page.click("#merge-find-button")
    await page.locator("#merge-found a", has_text="Marta Kalniņa").click()
    confirm = page.locator("#merge-confirm")
    await expect(confirm.locator("#merge-side-1")).to_contain_text("v-marta")
    await expect(confirm.locator("#merge-side-2")).to_contain_text("marta.k@example.com")
    await expect(confirm).to_contain_text("7 days")
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390  # nothing sticks out sideways on a phone
    await page.click("#merge-confirm-button")

    await expect(page.locator("#past-conversations li")).to_have_count(2)  # the joined history
    await expect(page.locator(".merge-undo")).to_contain_text("Marta Kalniņa")
    thread = await store.threads.get_thread(second)
    assert thread is not None
    keep = (await store.threads.get_thread(first)).contact_id  # type: ignore[union-attr]
    assert thread.contact_id == keep
    await page.click(".undo-merge")
    await expect(page.locator("#past-conversations li")).to_have_count(1)
    await expect(page.locator(".merge-undo")).to_have_count(0)
    assert (await store.threads.get_thread(second)).contact_id != keep  # type: ignore[union-attr]
    assert [e.action for e in await factories.audit(store, action="contact.")][-2:] == [
        "contact.merge",
        "contact.unmerge",
    ]


async def test_merging_needs_the_csrf_token_and_stays_in_the_account(client: TestClient) -> None:
    store = client.server.app[STORE]
    first = await store.threads.get_thread(await customer_writes(client, "webchat", "v-1", "One"))
    second = await store.threads.get_thread(await customer_writes(client, "webchat", "v-2", "Two"))
    assert first is not None and second is not None
    keep, gone = first.contact_id, second.contact_id
    await add_agent(store, "default", "ed", name="Ed", role=Role.AGENT, password=PASSWORD)
    await log_in(client, "ed", PASSWORD)
    path = f"/console/contacts/{keep}/merge"
    assert (await client.post(path, data={"from": gone})).status == 403  # no CSRF token
    csrf = await console_csrf(client)
    assert (await client.post(path, data={"csrf_token": csrf, "from": keep})).status == 400
    assert (await client.post(path, data={"csrf_token": csrf, "from": "con_x"})).status == 404
    found = await client.get(path, params={"q": "v-2"})
    assert found.status == 200 and f"with={gone}" in await found.text()

    await create_account(store, "rival", "Rival", "rival-admin", password=PASSWORD)
    client.session.cookie_jar.clear()
    login = await (await client.get("/login")).text()
    token = re.search(r'name="csrf_token" value="([^"]+)"', login).group(1)  # type: ignore[union-attr]
    await client.post(
        "/login", data={"account": "rival", "login": "rival-admin", "password": PASSWORD, "csrf_token": token}
    )
    csrf = await console_csrf(client)
    assert (await client.get(path)).status == 404
    assert (await client.get(path, params={"with": gone})).status == 404
    assert (await client.post(path, data={"csrf_token": csrf, "from": gone})).status == 404
    assert "v-2" not in await (await client.get("/console/contacts/x/merge", params={"q": "v-2"})).text()
    assert (await store.threads.get_thread(second.id)).contact_id == gone  # type: ignore[union-attr]

    client.session.cookie_jar.clear()  # and the other way: our agent cannot reach into the rival
    await log_in(client, "ed", PASSWORD)
    rival_thread = await store.threads.get_thread(
        (
            await client.server.app[PIPELINE].receive(
                Inbound("rival", "webchat", "r-1", Identity("webchat", "v-r"), "hi", "Rival customer")
            )
        )[0].thread.id
    )
    assert rival_thread is not None
    csrf = await console_csrf(client)
    assert (await client.post(path, data={"csrf_token": csrf, "from": rival_thread.contact_id})).status == 404
    assert "Rival customer" not in await (await client.get(path, params={"q": "Rival"})).text()
