"""The customer beside the conversation, in Debian's headless Chromium: an admin defines custom
attributes, an agent names the customer and fills them in, sees their past conversations; wrong
values are a clear 400, another account's contact is out of reach, and the values go with the
contact's export."""

from __future__ import annotations

import re

import pytest
from aiohttp.test_utils import TestClient
from playwright.async_api import Browser, expect

from bot.keys import PIPELINE, QUEUE, STORE
from bot.services.accounts import create_account
from bot.services.agents import add_agent
from bot.services.contact_fields import Attribute, FieldError, new_attribute
from bot.services.contacts import export_contact, find_contact
from conversations.agent_models import Role
from conversations.traffic import Identity, Inbound
from tests.web.console.test_console import console_csrf, log_in
from tests.web.console.test_console_browser import agent_page

pytestmark = pytest.mark.browser
PASSWORD = "correct horse battery"


async def customer_writes(client: TestClient, n: int) -> str:
    inbound = Inbound("default", "webchat", f"p-{n}", Identity("webchat", "v-paula"), f"question {n}")
    recorded, task = await client.server.app[PIPELINE].receive(inbound)
    assert task is not None
    await task
    return recorded.thread.id


async def test_an_agent_fills_in_the_customer_beside_the_conversation(client: TestClient, browser: Browser) -> None:
    base, store = f"http://127.0.0.1:{client.server.port}", client.server.app[STORE]
    first = await customer_writes(client, 1)
    thread = await store.threads.get_thread(first)
    assert thread is not None
    await store.queue.resolve(first, thread.opened_at, None)
    await client.server.app[QUEUE].set_routing("default", reopen_days=0.0)  # a new conversation, not the old one again
    second = await customer_writes(client, 2)
    _, password = await add_agent(store, "default", "ria", name="Ria", role=Role.ADMIN)
    page = await agent_page(browser, base, "ria", password)

    await page.goto(f"{base}/admin/account")
    for key, label, kind, options in (("plan", "Plan", "list", "Basic, Pro"), ("renews", "Renews on", "date", "")):
        await page.fill("#add-attribute input[name=key]", key)
        await page.fill("#add-attribute input[name=label]", label)
        await page.select_option("#add-attribute select[name=kind]", kind)
        await page.fill("#add-attribute input[name=options]", options)
        await page.click("#add-attribute button")
    await expect(page.locator("#attribute-plan")).to_contain_text("Basic, Pro")

    await page.goto(f"{base}/console?thread={second}")
    panel = page.locator("#contact-panel")
    await expect(panel.locator("#past-conversations li")).to_have_count(2)
    await panel.locator("#contact-name").fill("Paula Ozola")
    await panel.locator("select[name=attr_plan]").select_option("Pro")
    await panel.locator("input[name=attr_renews]").fill("2027-03-01")
    await panel.locator("#save-contact").click()
    await expect(page.locator("#contact-name")).to_have_value("Paula Ozola")
    await expect(page.locator("select[name=attr_plan]")).to_have_value("Pro")
    await expect(page.locator(".thread-head h1")).to_have_text("Paula Ozola")

    contact = await store.contacts.get_contact(thread.contact_id)
    assert contact is not None and contact.attributes == {"plan": "Pro", "renews": "2027-03-01"}
    exported = await export_contact(store, await find_contact(store, "default", contact.id), "cli")
    assert exported["contact"]["attributes"] == {"plan": "Pro", "renews": "2027-03-01"}


async def test_wrong_values_and_another_accounts_contact_are_refused(client: TestClient) -> None:
    store = client.server.app[STORE]
    thread_id = await customer_writes(client, 1)
    thread = await store.threads.get_thread(thread_id)
    assert thread is not None
    await store.accounts.set_account_fields("default", contact_attributes=[Attribute("age", "Age", "number").to_doc()])
    await add_agent(store, "default", "ed", name="Ed", role=Role.AGENT, password=PASSWORD)
    await log_in(client, "ed", PASSWORD)
    csrf = await console_csrf(client)
    path = f"/console/contacts/{thread.contact_id}"
    refused = await client.post(path, data={"csrf_token": csrf, "name": "X", "attr_age": "old"})
    assert refused.status == 400 and "Age: a number" in await refused.text()
    saved = await client.post(path, data={"csrf_token": csrf, "name": "X", "attr_age": "41"}, allow_redirects=False)
    assert saved.status in (302, 303)
    assert (await store.contacts.get_contact(thread.contact_id)).attributes == {"age": 41.0}  # type: ignore[union-attr]

    await create_account(store, "rival", "Rival", "rival-admin", password=PASSWORD)
    client.session.cookie_jar.clear()
    page = await (await client.get("/login")).text()
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    await client.post(
        "/login", data={"account": "rival", "login": "rival-admin", "password": PASSWORD, "csrf_token": token}
    )
    csrf = await console_csrf(client)
    other = await client.post(path, data={"csrf_token": csrf, "name": "mine now"})
    assert other.status == 404
    assert (await store.contacts.get_contact(thread.contact_id)).name == "X"  # type: ignore[union-attr]


def test_attribute_definitions_are_checked() -> None:
    plan = new_attribute([], "plan", "Plan", "list", "Basic, Pro, Basic")
    assert plan.options == ("Basic", "Pro")
    for args, said in [
        (("Plan!", "", "text", ""), "the key is"),
        (("plan", "", "text", ""), "there is an attribute plan"),
        (("x", "", "colour", ""), "the kind is one of"),
        (("y", "", "list", " , "), "a list needs its options"),
    ]:
        with pytest.raises(FieldError, match=said):
            new_attribute([plan], *args)
    with pytest.raises(FieldError, match="one of Basic, Pro"):
        plan.value_of("Gold")
    assert Attribute("d", "D", "date").value_of("2027-01-05") == "2027-01-05" and plan.value_of(" ") is None


async def test_the_consent_given_in_the_widgets_pre_chat_form_is_shown_beside_the_conversation(
    client: TestClient,
) -> None:
    store = client.server.app[STORE]
    thread_id = await customer_writes(client, 1)
    thread = await store.threads.get_thread(thread_id)
    assert thread is not None
    await add_agent(store, "default", "ed", name="Ed", role=Role.AGENT, password=PASSWORD)
    await log_in(client, "ed", PASSWORD)
    page = await (await client.get(f"/console?thread={thread_id}")).text()
    assert 'id="contact-consent"' not in page  # nothing given, nothing shown

    consent = {"given_at": "2026-12-04T09:30:00+00:00", "privacy_url": "https://shop.example/privacy"}
    await store.contacts.update_contact("default", thread.contact_id, thread.opened_at, prechat={"consent": consent})
    page = await (await client.get(f"/console?thread={thread_id}")).text()
    assert "Agreed to the privacy notice on 2026-12-04 09:30 UTC." in page
    assert '<a href="https://shop.example/privacy" target="_blank" rel="noopener noreferrer">' in page
