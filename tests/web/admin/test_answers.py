"""The bot's answers, forms and rules edited in the console: a change is checked, published as a
model version that shares the active model, and answers customers at once; activating the previous
version brings the previous answers back; a wrong text is refused with where the problem is and
nothing is published; another account's bot and an agent are out of reach."""

from __future__ import annotations

import html as markup
import re

from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient

from bot.keys import STORE
from bot.services.accounts import create_account
from bot.services.agents import add_agent
from conversations.agent_models import Role
from conversations.models import utcnow
from conversations.repositories import Repositories
from tests.nlu.conftest import (
    install,
    starter_blob,  # noqa: F401 (the session's starter model)
)
from tests.nlu.test_policy import say
from tests.router.dialogue.conftest import Start, bot  # noqa: F401 (the starter bot)
from tests.web.console.test_console import CSRF, console_csrf, log_in

PASSWORD = "correct horse battery"


async def admin(client: TestClient, login: str = "ada", account: str = "default") -> str:
    await add_agent(client.server.app[STORE], account, login, name=login, role=Role.ADMIN, password=PASSWORD)
    await log_in(client, login, PASSWORD)
    return await console_csrf(client, "/admin/intents/answers")


async def log_in_to(client: TestClient, account: str, login: str) -> str:
    """Log in as an agent of ``account`` (a new session); the CSRF token of the answers page."""
    client.session.cookie_jar.clear()
    page = await (await client.get("/login")).text()
    token = CSRF.search(page).group(1)  # type: ignore[union-attr]
    form = {"account": account, "login": login, "password": PASSWORD, "csrf_token": token}
    assert (await client.post("/login", data=form, allow_redirects=False)).status == 303
    return await console_csrf(client, "/admin/intents/answers")


async def ask(client: TestClient, text: str) -> str:
    async with client.ws_connect("/webchat/ws") as ws:
        await ws.receive_json()
        _, replies = await say(ws, "a1", text)
    return "\n".join(r["text"] for r in replies)


async def answers_form(client: TestClient) -> dict[str, str]:
    """The page's answers form as a browser would post it: textareas, inputs, and the checked
    boxes as ``escalate`` (intent names, comma-separated here: ``post_answers`` splits them)."""
    html = await (await client.get("/admin/intents/answers")).text()
    form = html[html.index('id="answers-form"') : html.index("</form>", html.index('id="answers-form"'))]
    fields = dict(re.findall(r'<textarea name="([^"]+)"[^>]*>([^<]*)</textarea>', form))
    fields |= dict(re.findall(r'<input name="(line:[^"]+)" value="([^"]*)"', form))
    fields = {k: _unescape(v) for k, v in fields.items()}
    fields["escalate"] = ",".join(re.findall(r'name="escalate" value="([^"]+)" checked(?! disabled)', form))
    return fields


async def post_answers(client: TestClient, fields: dict[str, str], csrf: str) -> ClientResponse:
    data = [(k, v) for k, v in fields.items() if k != "escalate"] + [("csrf_token", csrf)]
    data += [("escalate", name) for name in fields.get("escalate", "").split(",") if name]
    return await client.post("/admin/intents/answers", data=data)


async def test_an_edited_answer_is_said_at_once_and_the_previous_version_brings_the_old_one_back(bot: Start) -> None:
    client = await bot()
    store = client.server.app[STORE]
    csrf = await admin(client)
    before = await ask(client, "kāds ir jūsu darba laiks?")
    assert before.startswith("Strādājam no pirmdienas")  # the files' Latvian answer

    fields = await answers_form(client)
    fields["answer:opening_hours:lv"] = "Strādājam katru dienu 8:00–20:00.\n\n"
    posted = await post_answers(client, fields, csrf)
    assert posted.status == 200 and "the bot answers with it now" in await posted.text()
    active = await store.nlu.active_nlu_version("default")
    version = await store.nlu.get_nlu_model(active or "")
    assert version is not None and version["based_on"] == "starter-1" and version["bot_edited_by"] == "ada"
    assert await store.nlu.nlu_model_blob(active or "") == await store.nlu.nlu_model_blob("starter-1")

    assert await ask(client, "kāds ir jūsu darba laiks?") == "Strādājam katru dienu 8:00–20:00."
    assert "We are open" in await ask(client, "what are your opening hours?")  # other languages kept

    train = await client.get("/admin/intents/train")
    assert "answers changed by ada, model of starter-1" in await train.text()
    csrf = await console_csrf(client, "/admin/intents/train")
    back = await client.post("/admin/intents/models/starter-1/activate", data={"csrf_token": csrf})
    assert back.status == 200
    assert (await ask(client, "kāds ir jūsu darba laiks?")).startswith("Strādājam no pirmdienas")


async def test_a_new_answer_and_escalation_come_from_the_form(bot: Start) -> None:
    client = await bot()
    csrf = await admin(client)
    fields = await answers_form(client)
    assert fields["escalate"] == "complaint"
    fields["answer:goodbye:en"] = "Bye now!\nSee you soon!"
    fields["answer:thanks:en"] = ""  # no answer: handed over with the hand-off line
    fields["line:handoff:en"] = "One moment, a colleague takes over."
    fields["escalate"] = "thanks"  # and complaint no longer
    posted = await post_answers(client, fields, csrf)
    assert posted.status == 200
    html = await (await client.get("/admin/intents/answers")).text()
    assert 'value="thanks" checked' in html and 'value="complaint" checked' not in html
    assert await ask(client, "goodbye, see you") in ("Bye now!", "See you soon!")
    assert await ask(client, "thank you so much") == "One moment, a colleague takes over."


async def test_a_wrong_domain_is_refused_with_where_and_nothing_is_published(bot: Start) -> None:
    client = await bot()
    store = client.server.app[STORE]
    csrf = await admin(client)
    page = await (await client.get("/admin/intents/answers")).text()
    assert "order_status_form" in page and "utter_ask_order_number" in page  # forms and YAML beside the answers
    texts = {part: _textarea(page, part) for part in ("responses", "domain", "rules")}
    wrong = texts["domain"].replace("required_slots:", "required_slot:")
    refused = await client.post("/admin/intents/answers/yaml", data={**texts, "domain": wrong, "csrf_token": csrf})
    body = await refused.text()
    assert refused.status == 400 and "domain.yml: forms.order_status_form needs `required_slots:`" in body
    assert "required_slot:" in _textarea(body, "domain")  # the text as typed, to correct
    for bad in ("rules: 5", "[unclosed", "- a list"):
        refused = await client.post("/admin/intents/answers/yaml", data={**texts, "rules": bad, "csrf_token": csrf})
        assert refused.status == 400 and "rules.yml" in await refused.text(), bad
    assert await store.nlu.active_nlu_version("default") == "starter-1"
    assert await store.training.bot_draft("default") is None

    asked = texts["domain"].replace("Please send me your order number", "Your order number, please")
    posted = await client.post("/admin/intents/answers/yaml", data={**texts, "domain": asked, "csrf_token": csrf})
    assert posted.status == 200
    assert (await ask(client, "where is my order?")).startswith("Your order number, please (for example A-10234)")


async def test_without_a_model_the_change_waits_for_the_next_trained_version(bot: Start) -> None:
    client = await bot()
    store = client.server.app[STORE]
    await create_account(store, "acme", "Acme", "acme-admin", password=PASSWORD)
    csrf = await log_in_to(client, "acme", "acme-admin")
    page = await (await client.get("/admin/intents/answers")).text()
    assert 'id="no-active-model"' in page
    fields = await answers_form(client)
    fields["answer:greet:en"] = "Acme says hello."
    posted = await post_answers(client, fields, csrf)
    assert "the next version you train uses these answers" in await posted.text()
    assert (await store.training.bot_draft("acme") or {})["updated_by"] == "acme-admin"
    assert await store.training.bot_draft("default") is None  # the other account's bot is untouched
    assert "Acme" not in await ask(client, "hello")  # the web chat is the default account's


async def test_an_agent_and_another_accounts_admin_cannot_change_the_bot(bot: Start) -> None:
    client = await bot()
    store = client.server.app[STORE]
    await add_agent(store, "default", "bob", name="Bob", role=Role.AGENT, password=PASSWORD)
    await log_in(client, "bob", PASSWORD)
    csrf = await console_csrf(client)
    assert (await client.get("/admin/intents/answers", allow_redirects=False)).status in (302, 403)
    posted = await client.post(
        "/admin/intents/answers", data={"csrf_token": csrf, "answer:greet:en": "pwned"}, allow_redirects=False
    )
    assert posted.status in (302, 403)
    assert await store.training.bot_draft("default") is None

    await create_account(store, "rival", "Rival", "rival-admin", password=PASSWORD)
    await install(store, await store.nlu.nlu_model_blob("starter-1") or b"", "rival-1", "rival")
    csrf = await log_in_to(client, "rival", "rival-admin")
    fields = await answers_form(client)
    fields["answer:greet:en"] = "Rival says hello."
    assert (await post_answers(client, fields, csrf)).status == 200
    assert await store.training.bot_draft("default") is None
    assert await store.nlu.active_nlu_version("default") == "starter-1"
    assert "Rival" not in await ask(client, "hello")  # the web chat is the default account's


async def test_a_version_of_edited_answers_is_retired_with_the_model_it_shares(store: Repositories) -> None:
    """Erasing a message the shared model learned from retires the edited version too (its
    learned_from is the base's), and the shared model's blob goes."""
    now = utcnow()
    await store.nlu.save_nlu_model("default", "base", b"model", {"learned_from": ["m1"]}, now)
    assert await store.nlu.derive_nlu_model("default", "base", "edited", {"responses": "x"}, "ada", now)
    assert await store.nlu.nlu_model_blob("edited") == b"model"
    assert not await store.nlu.derive_nlu_model("other", "base", "theirs", {}, "eve", now)  # not their version
    assert sorted(await store.nlu.retire_nlu_models("default", ["m1"], "erasure", now)) == ["base", "edited"]
    assert await store.nlu.nlu_model_blob("edited") is None
    assert not await store.nlu.derive_nlu_model("default", "base", "again", {}, "ada", now)  # retired


def _textarea(html: str, part: str) -> str:
    found = re.search(rf'<textarea name="{part}"[^>]*>([^<]*)</textarea>', html)
    assert found, part
    return _unescape(found.group(1))


def _unescape(text: str) -> str:
    return markup.unescape(text)
