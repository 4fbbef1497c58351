"""Admin pages of intent training, part two: learn from conversations (one click per message,
htmx), train with a progress indicator (the job polled with htmx) and the cross-validated result
beside the active model's, model versions (activate or roll back), and the "try it" box."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web

from bot.keys import NLU, STORE
from bot.nlu.data import OUT_OF_SCOPE
from bot.nlu.jobs import TrainingRunning
from bot.nlu.remote import NluUnavailable
from bot.nlu.training_set import TrainingSetError
from bot.web.admin.intents import INTENTS, back, data_of
from bot.web.api.learning import learn, review_item, try_text
from bot.web.i18n import translate
from bot.web.pages import SESSION, current_agent, page, plain, render, signed_in
from conversations.agent_models import Role

LEARN = f"{INTENTS}/learn"
TRAIN = f"{INTENTS}/train"
MAX_TRY = 1000


def _htmx(request: web.Request) -> bool:
    return request.headers.get("HX-Request") == "true"


def fragment(request: web.Request, name: str, status: int = 200, **context: Any) -> web.Response:
    """A piece of a page for htmx to swap in, in the admin's language."""
    agent = current_agent(request)
    html = render(request.app, name, agent.lang, agent=agent, csrf=request[SESSION].csrf, **context)
    return web.Response(text=html, content_type="text/html", status=status)


# --- learn from conversations -----------------------------------------------------------------


@signed_in(Role.ADMIN)
async def learn_page(request: web.Request) -> web.Response:
    agent, data = current_agent(request), data_of(request)
    items = [review_item(doc) for doc in await request.app[STORE].training.messages_to_review(agent.account_id)]
    targets = sorted(set(await data.intent_names()) - {OUT_OF_SCOPE})
    return page(
        request, "intents_learn.html", items=items, targets=targets, message=request.query.get("message", "")[:300]
    )


@signed_in(Role.ADMIN)
async def learn_message(request: web.Request) -> web.Response:
    """``intent`` or ``choice`` (an intent or ``out_of_scope``) makes the message an example;
    ``dismiss`` skips it. For htmx, the answer is the row saying what was learned."""
    agent, form = current_agent(request), await request.post()
    message_id = request.match_info["message_id"]
    # a button names the intent (the guess, out of scope); "Assign" sends the one chosen in the list
    intent = None if form.get("dismiss") else str(form.get("intent") or form.get("choice") or "").strip()
    if intent == "":  # the list starts empty: nothing is taught unless the admin picks
        return plain(400, translate(agent.lang, "Choose an intent, out of scope, or dismiss."))
    try:
        await learn(request.app, agent.account_id, message_id, intent, agent)
        outcome = (
            translate(agent.lang, "Learned as {intent}: it counts from the next training.", intent=intent)
            if intent
            else translate(agent.lang, "Dismissed.")
        )
        status = 200
    except TrainingSetError as exc:
        if exc.status == 404 or not _htmx(request):
            return plain(exc.status, str(exc))
        outcome, status = str(exc), 200  # the row says why (e.g. the text is an example already)
    if not _htmx(request):
        return back(LEARN, outcome)
    return fragment(request, "_learn_row.html", item={"id": message_id}, outcome=outcome, status=status)


# --- training, versions ------------------------------------------------------------------------

SAME_WITHIN = 1.0  # percentage points of cross-validated accuracy (or macro F1) that count as no change


def verdict(new: Mapping[str, Any] | None, active: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """How a version's cross-validated figures compare with the active version's: ``better``,
    ``worse`` or ``same`` by accuracy, macro F1 deciding a tie; ``None`` when either has none."""
    if not new or not active or "accuracy" not in new or "accuracy" not in active:
        return None
    accuracy = round(float(new["accuracy"]) - float(active["accuracy"]), 1)
    f1 = round(float(new.get("macro_f1", 0)) - float(active.get("macro_f1", 0)), 1)
    deciding = accuracy if abs(accuracy) > SAME_WITHIN else f1
    outcome = "same" if abs(deciding) <= SAME_WITHIN else "better" if deciding > 0 else "worse"
    return {"outcome": outcome, "accuracy": accuracy, "macro_f1": f1}


async def _job_context(request: web.Request, job_id: str) -> dict[str, Any] | None:
    agent, store = current_agent(request), request.app[STORE]
    job = await store.nlu.get_nlu_job(job_id)
    if job is None or job.get("account_id") != agent.account_id:
        return None
    model = await store.nlu.get_nlu_model(str(job["version"])) if job.get("version") else None
    active = await store.nlu.active_nlu_version(agent.account_id)
    active_model = (
        await store.nlu.get_nlu_model(active) if active and (model is None or active != model["_id"]) else None
    )
    compared = verdict((model or {}).get("metrics"), (active_model or {}).get("metrics"))
    return {"job": job, "model": model, "active_model": active_model, "active": active, "verdict": compared}


async def _train_context(request: web.Request) -> dict[str, Any]:
    agent, store, nlu = current_agent(request), request.app[STORE], request.app[NLU]
    active = await store.nlu.active_nlu_version(agent.account_id)
    models = await store.nlu.nlu_models(agent.account_id, limit=20)
    job = await _job_context(request, request.query.get("job", "")) if request.query.get("job") else None
    return {
        "models": models,
        "active": active,
        "job": job,
        "active_model": next((m for m in models if m["_id"] == active), None),
        "can_train": nlu.settings.engine == "embedded",
        "message": request.query.get("message", "")[:300],
        "warning": None,
    }


@signed_in(Role.ADMIN)
async def train_page(request: web.Request) -> web.Response:
    return page(request, "intents_train.html", **await _train_context(request))


async def _worse_than_active(request: web.Request, version: str) -> dict[str, Any] | None:
    """The comparison when ``version`` (of the admin's account) has worse figures than the active one."""
    agent, store = current_agent(request), request.app[STORE]
    model = await store.nlu.get_nlu_model(version)
    active = await store.nlu.active_nlu_version(agent.account_id)
    if model is None or model.get("account_id") != agent.account_id or active in (None, version):
        return None
    current = await store.nlu.get_nlu_model(str(active))
    compared = verdict(model.get("metrics"), (current or {}).get("metrics"))
    if compared is None or compared["outcome"] != "worse":
        return None
    return {"version": version, "active": active, **compared}


@signed_in(Role.ADMIN)
async def start_training(request: web.Request) -> web.Response:
    """A training job of the account's data; the new version is stored, not activated: the admin
    compares its figures with the active model's, then activates it."""
    agent, nlu = current_agent(request), request.app[NLU]
    if nlu.settings.engine != "embedded":
        return plain(409, 'training needs nlu.engine = "embedded"')
    try:
        job_id = await nlu.start_job(nlu.train_request(agent.account_id, activate=False, by=agent.login))
    except TrainingRunning as running:  # another admin (or tab) started one: follow it
        if running.job is None:
            return plain(409, translate(agent.lang, "A training of this account is starting; try again in a moment."))
        job_id = running.job
    if not _htmx(request):
        return back(TRAIN, job=job_id)
    context = await _job_context(request, job_id)
    return fragment(request, "_train_job.html", **(context or {}))


@signed_in(Role.ADMIN)
async def job_status(request: web.Request) -> web.Response:
    context = await _job_context(request, request.match_info["job"])
    if context is None:
        return plain(404, "no such training job")
    return fragment(request, "_train_job.html", **context)


@signed_in(Role.ADMIN)
async def activate_version(request: web.Request) -> web.Response:
    agent, version, store = current_agent(request), request.match_info["version"], request.app[STORE]
    if (await request.post()).get("confirm") != "worse":  # a worse version is activated only when confirmed
        warning = await _worse_than_active(request, version)
        if warning is not None:
            context = {**await _train_context(request), "warning": warning}
            return page(request, "intents_train.html", status=409, **context)
    if not await request.app[NLU].activate(agent.account_id, version, by=agent.login):
        model = await store.nlu.get_nlu_model(version)
        if model is not None and model.get("account_id") == agent.account_id and model.get("retired_at"):
            return plain(
                409,
                translate(
                    agent.lang,
                    "Version {version} was retired by erasure {receipt}: it was trained on erased data. Train "
                    "a new version.",
                    version=version,
                    receipt=model.get("retired_by"),
                ),
            )
        return plain(404, f"no model version {version}")
    return back(
        TRAIN,
        translate(
            agent.lang,
            "Version {version} is active: every router process answers with it within seconds.",
            version=version,
        ),
    )


# --- try it ------------------------------------------------------------------------------------


@signed_in(Role.ADMIN)
async def try_it(request: web.Request) -> web.Response:
    agent = current_agent(request)
    text = str((await request.post()).get("text", "")).strip()
    if not text or len(text) > MAX_TRY:
        return fragment(
            request,
            "_try_result.html",
            result=None,
            error=translate(agent.lang, "Type a sentence (up to 1000 characters)."),
        )
    try:
        found = await try_text(request.app, agent.account_id, text)
    except NluUnavailable as exc:
        return fragment(request, "_try_result.html", result=None, error=str(exc))
    if found is None:
        return fragment(
            request,
            "_try_result.html",
            result=None,
            error=translate(agent.lang, "No model is active: train a version and activate it first."),
        )
    parse, answer = found
    return fragment(request, "_try_result.html", result=parse, reply=answer, error="")


def routes() -> list[web.RouteDef]:
    return [
        web.get(LEARN, learn_page),
        web.post(f"{LEARN}/{{message_id}}", learn_message),
        web.get(TRAIN, train_page),
        web.post(TRAIN, start_training),
        web.get(f"{INTENTS}/jobs/{{job}}", job_status),
        web.post(f"{INTENTS}/models/{{version}}/activate", activate_version),
        web.post(f"{INTENTS}/try", try_it),
    ]
