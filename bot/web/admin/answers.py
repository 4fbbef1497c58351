"""Admin pages of the bot's answers, forms and actions: what the bot says per intent and language,
edited in a form; the forms, slots and actions shown beside them and editable as Rasa YAML. A
save is checked and published as a model version (``bot/services/bot_content.py``)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from bot.keys import NLU, SETTINGS, STORE
from bot.nlu.data import OUT_OF_SCOPE
from bot.router.dialogue.content import Bot, Content, ContentError
from bot.services import bot_content
from bot.web.admin.intents import back, data_of
from bot.web.i18n import translate
from bot.web.pages import current_agent, page, signed_in
from conversations.agent_models import Role
from conversations.training import BOT_PARTS

ANSWERS = "/admin/intents/answers"


async def _context(request: web.Request, shown: Content | None = None) -> dict[str, Any]:
    """The page's data; ``shown``: texts that failed their check, kept in the editors as typed."""
    agent, store = current_agent(request), request.app[STORE]
    now = await bot_content.current(store, request.app[SETTINGS], agent.account_id)
    bot = now.content.parsed()  # checked when saved (the files: at start-up)
    trained = [i.name for i in await data_of(request).intents() if i.name != OUT_OF_SCOPE]
    intents = sorted({*trained, *bot.responses.texts})
    return {
        "languages": bot.responses.languages,
        "intents": intents,
        "answers": {i: {lang: "\n".join(v) for lang, v in bot.responses.texts.get(i, {}).items()} for i in intents},
        "escalate": bot.responses.escalate,
        "lines": {kind: getattr(bot.responses, kind) for kind in bot_content.LINES},
        "forms": _forms(bot),
        "http_actions": bot.domain.http_actions,
        "server_actions": [a for a in bot.domain.actions if a not in bot.domain.http_actions],
        "answered_by_action": bot.domain.answers,
        "texts": (shown or now.content).to_doc(),
        "edited_by": now.edited_by,
        "edited_at": now.edited_at,
        "active": await store.nlu.active_nlu_version(agent.account_id),
        "message": request.query.get("message", "")[:300],
        "error": "",
        "error_part": "",
    }


def _forms(bot: Bot) -> list[dict[str, Any]]:
    started = {form: sorted(i for i, f in bot.domain.starts.items() if f == form) for form in bot.domain.forms}
    return [
        {
            "name": form.name,
            "slots": [(slot, _pattern(bot, slot)) for slot in form.required],
            "started_by": started[form.name],
            "submit": form.submit or "",
        }
        for form in bot.domain.forms.values()
    ]


def _pattern(bot: Bot, slot: str) -> str:
    found = bot.domain.slots[slot].pattern
    return found.pattern if found is not None else ""


@signed_in(Role.ADMIN)
async def answers_page(request: web.Request) -> web.Response:
    return page(request, "answers.html", **await _context(request))


@signed_in(Role.ADMIN)
async def save_answers(request: web.Request) -> web.Response:
    """The form: ``answer:<intent>:<language>`` (one answer per line), ``escalate`` (intents handed
    to a human), ``line:<kind>:<language>``."""
    form = await request.post()
    agent = current_agent(request)
    answers: dict[str, dict[str, list[str]]] = {}
    lines: dict[str, dict[str, str]] = {}
    for key, value in form.items():
        kind, _, rest = key.partition(":")
        name, _, language = rest.rpartition(":")
        if kind == "answer" and name and language:
            variants = [v.strip() for v in str(value).splitlines() if v.strip()]
            answers.setdefault(name, {})[language] = variants
        elif kind == "line" and name in bot_content.LINES and language:
            lines.setdefault(name, {})[language] = str(value).strip()
    escalate = {str(v) for v in form.getall("escalate", [])}
    now = await bot_content.current(request.app[STORE], request.app[SETTINGS], agent.account_id)
    try:
        changed = bot_content.with_answers(now.content, answers, escalate, lines)
    except ContentError as exc:
        return await _refused(request, exc, None)
    return await _publish(request, changed)


@signed_in(Role.ADMIN)
async def save_yaml(request: web.Request) -> web.Response:
    form = await request.post()
    typed = Content(*(str(form.get(part, "")).replace("\r\n", "\n") for part in BOT_PARTS))
    return await _publish(request, typed)


async def _publish(request: web.Request, content: Content) -> web.Response:
    agent, app = current_agent(request), request.app
    try:
        done = await bot_content.publish(app[STORE], app[NLU], app[SETTINGS], agent.account_id, content, agent)
    except ContentError as exc:
        return await _refused(request, exc, content)
    if done.version is None:
        said = translate(
            agent.lang, "Saved. There is no active model yet: the next version you train uses these answers."
        )
    else:
        said = translate(
            agent.lang, "Published as version {version}: the bot answers with it now.", version=done.version
        )
    return back(ANSWERS, said)


async def _refused(request: web.Request, exc: ContentError, typed: Content | None) -> web.Response:
    context = await _context(request, typed)
    context.update(error=str(exc), error_part=exc.part)
    return page(request, "answers.html", status=400, **context)


def routes() -> list[web.RouteDef]:
    return [web.get(ANSWERS, answers_page), web.post(ANSWERS, save_answers), web.post(f"{ANSWERS}/yaml", save_yaml)]
