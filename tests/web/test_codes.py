"""Stored codes shown as words: the one table that maps them, and the pages that show them."""

from __future__ import annotations

from html.parser import HTMLParser

from aiohttp.test_utils import TestClient

from bot.handlers.registry import CHANNELS
from bot.keys import STORE
from bot.router import calls, dispatch, policy, reading
from bot.services.agents import add_agent
from bot.web.codes import WORDS, word
from bot.web.keys import FIRST_ADMIN
from conversations.agent_models import Role
from conversations.tenant_models import SCOPES, DeliveryState
from conversations.thread_models import ThreadStatus, TimelineKind
from tests.router.test_queue import customer_writes
from tests.web.console.test_console import console_csrf, log_in


class _Text(HTMLParser):
    """The text a reader sees: element content, not attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def visible_text(html: str) -> str:
    reader = _Text()
    reader.feed(html)
    return " ".join(reader.parts)


def test_every_code_the_router_stores_has_words() -> None:
    stored = {
        "status": set(ThreadStatus),
        "role": set(Role),
        "scope": set(SCOPES),
        "event": set(TimelineKind),
        "webhook": set(DeliveryState),
        "channel": set(CHANNELS),
        "reason": {
            reading.NO_NLU,
            dispatch.DIRECT,
            dispatch.REPLY_LIMIT,
            reading.NLU_UNAVAILABLE,
            policy.LOW_CONFIDENCE,
            policy.FALLBACK,
            calls.MISSED_CALL,
        },
    }
    for kind, codes in stored.items():
        assert codes <= set(WORDS[kind]), kind


def test_a_code_is_a_word_with_its_subject_or_at_least_readable() -> None:
    assert word("en", "reason", "intent:talk_to_human") == "the customer asked for a person"
    assert word("ru", "reason", "intent:talk_to_human") == "клиент попросил человека"
    assert word("en", "reason", "form_failed:order_form") == "the form order_form could not be completed"
    assert word("lv", "reason", "action_failed:check_order") == "darbība check_order neizdevās"
    assert word("lv", "status", "assigned") == "piešķirta"
    assert word("ru", "scope", "write") == "изменение данных"
    assert word("en", "reason", "agent_gone_fishing") == "agent gone fishing"  # nobody listed it
    assert word("en", "reason", "new_rule:x_y") == "new rule: x_y"
    assert word("en", "status", None) == "—"


async def test_the_console_shows_reasons_and_statuses_as_words(client: TestClient) -> None:
    app = client.server.app
    store = app[STORE]
    thread_id = await customer_writes(app, "visitor-1", "I need a human")
    thread = await store.threads.get_thread(thread_id)
    assert thread is not None and thread.escalation_reason == "no_nlu"  # this router has no model
    _, password = await add_agent(store, "default", "ava", name="Ava", role=Role.AGENT)
    await log_in(client, "ava", password)
    await client.post("/console/lang", data={"lang": "lv", "csrf_token": await console_csrf(client)})
    html = await (await client.get("/console", params={"thread": thread_id})).text()
    text = visible_text(html)
    assert text.count("nav robota modeļa, kas atbildētu") == 2 and "no_nlu" not in text  # queue row, timeline
    assert "Tīmekļa tērzēšana" in text and "webchat" not in text
    assert "rindā" in text and 'badge--status-queued">rindā<' in html
    assert 'data-reason="no_nlu"' in html  # the code stays where scripts may read it
    token = await console_csrf(client)
    await client.post("/console/shift", data={"action": "start", "csrf_token": token})
    await client.post(f"/console/threads/{thread_id}/take", data={"csrf_token": token})
    html = await (await client.get("/console", params={"thread": thread_id})).text()
    assert 'badge--status-assigned">piešķirta<' in html


async def test_admin_pages_show_roles_and_scopes_as_words(client: TestClient) -> None:
    login, password = client.server.app[FIRST_ADMIN]  # type: ignore[misc]
    await log_in(client, login, password)
    await client.post("/console/lang", data={"lang": "ru", "csrf_token": await console_csrf(client)})
    admin = await (await client.get("/admin")).text()
    assert '<option value="admin">администратор</option>' in admin
    assert ">суперадминистратор<" in admin and "superadmin" not in visible_text(admin)
    token = await console_csrf(client, "/admin/account")
    await client.post(
        "/admin/account/tokens", data={"name": "crm", "scope_read": "on", "scope_write": "on", "csrf_token": token}
    )
    account = await (await client.get("/admin/account")).text()
    assert "чтение данных, изменение данных" in visible_text(account)
    assert 'name="scope_write" checked> изменение данных' in account
