"""Admin pages of intent training, part one: browse intents with their examples and responses,
add / edit / move / delete examples, add and delete intents, import and export Rasa YAML.
(Learning from conversations, training and "try it" are in ``admin_training.py``.)"""

from __future__ import annotations

import asyncio
import re
from typing import Any

from aiohttp import web

from bot.keys import NLU, SETTINGS, STORE
from bot.nlu.data import OUT_OF_SCOPE
from bot.nlu.formats import NluFormatError
from bot.nlu.training_set import TrainingSet, TrainingSetError
from bot.services import bot_content
from bot.web.api.intents import MAX_YAML, training_set
from bot.web.i18n import translate, translate_plural
from bot.web.pages import current_agent, page, plain, redirect, signed_in
from conversations.agent_models import Role

INTENTS = "/admin/intents"


def data_of(request: web.Request) -> TrainingSet:
    """The signed-in admin's account's training set; edits are audited under the admin."""
    agent = current_agent(request)
    return training_set(request.app, agent.account_id, agent)


def back(path: str, message: str = "", **query: str) -> web.Response:
    """Redirect to a page of the console with a one-line message (kept to harmless characters)."""
    parts = [f"{k}={v}" for k, v in query.items() if v]
    if message:
        parts.append("message=" + re.sub(r"[^\w .,:;'()@+-]", "", message).replace(" ", "+")[:300])
    return redirect(path + ("?" + "&".join(parts) if parts else ""))


async def intents_context(request: web.Request, data: TrainingSet, chosen: str) -> dict[str, Any]:
    intents = await data.intents()
    names = [i.name for i in intents]
    if chosen not in names:
        chosen = names[0] if names else ""
    answers = (await bot_content.current(request.app[STORE], request.app[SETTINGS], data.account_id)).content.parsed()
    languages = sorted({*answers.responses.languages, *(await data.data()).languages})
    return {
        "intents": intents,
        "chosen": chosen,
        "examples": await data.examples(chosen) if chosen else [],
        "targets": sorted({*names, OUT_OF_SCOPE}),
        "languages": languages,
        "in_store": await data.in_store(),
        "responses": answers.responses.texts.get(chosen, {}),
        "escalates": chosen in answers.responses.escalate,
        "files": ", ".join(request.app[NLU].data_paths()) or "—",
    }


@signed_in(Role.ADMIN)
async def intents_page(request: web.Request) -> web.Response:
    data = data_of(request)
    context = await intents_context(request, data, request.query.get("intent", ""))
    return page(request, "intents.html", message=request.query.get("message", "")[:300], error="", **context)


@signed_in(Role.ADMIN)
async def add_intent(request: web.Request) -> web.Response:
    name = str((await request.post()).get("name", ""))
    try:
        name = await data_of(request).add_intent(name)
    except TrainingSetError as exc:
        return plain(exc.status, str(exc))
    return back(
        INTENTS,
        translate(
            current_agent(request).lang,
            "Intent {intent} added: now add a few examples of what customers write.",
            intent=name,
        ),
        intent=name,
    )


@signed_in(Role.ADMIN)
async def remove_intent(request: web.Request) -> web.Response:
    intent = request.match_info["intent"]
    try:
        removed = await data_of(request).delete_intent(intent)
    except TrainingSetError as exc:
        return plain(exc.status, str(exc))
    return back(
        INTENTS,
        translate_plural(
            current_agent(request).lang,
            "Intent {intent} deleted with {n} example.",
            "Intent {intent} deleted with {n} examples.",
            removed,
            intent=intent,
        ),
    )


@signed_in(Role.ADMIN)
async def add_example(request: web.Request) -> web.Response:
    form, intent = await request.post(), request.match_info["intent"]
    try:
        await data_of(request).add_example(intent, str(form.get("text", "")), str(form.get("language", "")) or None)
    except TrainingSetError as exc:
        return plain(exc.status, str(exc))
    return back(INTENTS, translate(current_agent(request).lang, "Example added."), intent=intent)


@signed_in(Role.ADMIN)
async def change_example(request: web.Request) -> web.Response:
    """One form per example row: ``action`` save (text, language), move (to ``intent``) or delete."""
    form, example = await request.post(), request.match_info["example"]
    action, data = str(form.get("action", "")), data_of(request)
    lang = current_agent(request).lang
    try:
        current = await data.example(example)
        if action == "delete":
            await data.delete_example(example)
            return back(INTENTS, translate(lang, "Example deleted."), intent=current.intent)
        if action == "move":
            if not form.get("intent"):  # the list starts empty: an example moves only where it is sent
                return plain(400, translate(lang, "Choose the intent to move the example to."))
            moved = await data.edit_example(example, intent=str(form.get("intent", "")))
            return back(
                INTENTS, translate(lang, "Example moved to {intent}.", intent=moved.intent), intent=current.intent
            )
        if action == "save":
            await data.edit_example(example, text=str(form.get("text", "")), language=str(form.get("language", "")))
            return back(INTENTS, translate(lang, "Saved."), intent=current.intent)
    except TrainingSetError as exc:
        return plain(exc.status, str(exc))
    return plain(400, "action must be save, move or delete")


@signed_in(Role.ADMIN)
async def import_file(request: web.Request) -> web.Response:
    """A Rasa NLU YAML upload; a bad file shows the page again with file, line and problem."""
    form = await request.post()
    upload = form.get("file")
    data = data_of(request)
    if not isinstance(upload, web.FileField):
        return plain(400, "choose a Rasa NLU YAML file to import")
    raw = await asyncio.get_running_loop().run_in_executor(None, upload.file.read, MAX_YAML + 1)
    name = re.sub(r"[^\w .-]", "_", upload.filename or "upload.yml")[:100]
    try:
        if len(raw) > MAX_YAML:
            raise NluFormatError(name, 0, f"larger than {MAX_YAML // 1_000_000} MB")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise NluFormatError(name, 1, f"not UTF-8 text ({exc.reason})") from None
        added, intents = await data.import_yaml(text, name, replace=form.get("replace") == "on")
    except NluFormatError as exc:
        context = await intents_context(request, data, request.query.get("intent", ""))
        return page(request, "intents.html", status=400, message="", error=str(exc), **context)
    lang = current_agent(request).lang
    return back(
        INTENTS,
        translate_plural(
            lang,
            "{file}: {n} example added ({intents} intents in the file).",
            "{file}: {n} examples added ({intents} intents in the file).",
            added,
            file=name,
            intents=intents,
        ),
    )


@signed_in(Role.ADMIN)
async def export_file(request: web.Request) -> web.Response:
    agent = current_agent(request)
    text = await data_of(request).export_yaml()
    return web.Response(
        text=text,
        content_type="application/x-yaml",
        headers={"Content-Disposition": f'attachment; filename="nlu-{agent.account_id}.yml"'},
    )


def routes() -> list[web.RouteDef]:
    return [
        web.get(INTENTS, intents_page),
        web.post(INTENTS, add_intent),
        web.get(f"{INTENTS}/export.yml", export_file),
        web.post(f"{INTENTS}/import", import_file),
        web.post(f"{INTENTS}/examples/{{example}}", change_example),
        web.post(f"{INTENTS}/{{intent}}/examples", add_example),
        web.post(f"{INTENTS}/{{intent}}/remove", remove_intent),
    ]
