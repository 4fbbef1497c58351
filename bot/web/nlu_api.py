"""The REST API of the NLU layer: parse, add examples, train (a background job with progress),
list model versions and activate one (every router process swaps to it within
``nlu.reload_interval``). Guarded like the rest of ``/api``."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from bot.keys import NLU, SETTINGS, STORE
from bot.nlu.remote import NluUnavailable
from bot.web.api import guarded
from bot.web.errors import json_error
from conversations.models import from_epoch_ms, utcnow

MAX_EXAMPLES = 1000


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.read() or b"{}")
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise _bad("body is not valid JSON") from None
    if not isinstance(body, dict):
        raise _bad("body must be a JSON object")
    return body


def _bad(detail: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(text=json.dumps({"error": "bad_request", "detail": detail}), content_type="application/json")


def _plain(doc: dict[str, Any], id_name: str = "id") -> dict[str, Any]:
    """A stored document for JSON: ``_id`` renamed, times (epoch ms) in ISO 8601."""
    return {
        (id_name if key == "_id" else key): (
            from_epoch_ms(value).isoformat() if key.endswith("_at") and isinstance(value, int) else value
        )
        for key, value in doc.items()
    }


def _account(request: web.Request, body: dict[str, Any] | None = None) -> str:
    account = (body or {}).get("account") or request.query.get("account") or request.app[SETTINGS].account.id
    if not isinstance(account, str):
        raise _bad("account must be a string")
    return account


@guarded
async def parse(request: web.Request) -> web.Response:
    body = await _body(request)
    text = body.get("text")
    if not isinstance(text, str) or not text.strip():
        raise _bad("text must be a non-empty string")
    try:
        result = await request.app[NLU].parse(_account(request, body), text)
    except NluUnavailable as exc:
        return json_error(503, "nlu_unavailable", str(exc))
    if result is None:
        return json_error(409, "no_model", "no NLU model is active for this account; train one first")
    return web.json_response({"text": text, **result.to_doc()})


@guarded
async def add_examples(request: web.Request) -> web.Response:
    body = await _body(request)
    items = body.get("examples")
    if not isinstance(items, list) or not 1 <= len(items) <= MAX_EXAMPLES:
        raise _bad(f"examples must be a list of 1 to {MAX_EXAMPLES} objects")
    clean = []
    for n, item in enumerate(items):
        if not isinstance(item, dict) or not all(isinstance(item.get(k), str) and item[k].strip() for k in ("text", "intent")):
            raise _bad(f"examples[{n}] needs non-empty text and intent strings")
        language = item.get("language")
        if language is not None and not isinstance(language, str):
            raise _bad(f"examples[{n}].language must be a string")
        clean.append({"text": item["text"].strip(), "intent": item["intent"].strip(), "language": language})
    count = await request.app[STORE].add_nlu_examples(_account(request, body), clean, utcnow())
    return web.json_response({"added": count}, status=201)


@guarded
async def train(request: web.Request) -> web.Response:
    body = await _body(request)
    activate = body.get("activate", True)
    if not isinstance(activate, bool):
        raise _bad("activate must be true or false")
    nlu = request.app[NLU]
    if nlu.settings.engine != "embedded":
        return json_error(409, "not_embedded", "training needs nlu.engine = \"embedded\"")
    job = nlu.start_job(nlu.train_request(_account(request, body), activate=activate, by="api"))
    return web.json_response({"job": job, "url": f"/api/nlu/jobs/{job}"}, status=202)


@guarded
async def job(request: web.Request) -> web.Response:
    doc = await request.app[STORE].get_nlu_job(request.match_info["job"])
    if doc is None:
        return json_error(404, "not_found", "no such training job")
    return web.json_response(_plain(doc))


@guarded
async def models(request: web.Request) -> web.Response:
    account = _account(request)
    store = request.app[STORE]
    active = await store.active_nlu_version(account)
    items = [{**_plain(doc, "version"), "active": doc["_id"] == active} for doc in await store.nlu_models(account)]
    return web.json_response({"active": active, "models": items})


@guarded
async def activate(request: web.Request) -> web.Response:
    account = _account(request)
    version = request.match_info["version"]
    if not await request.app[NLU].activate(account, version, by="api"):
        return json_error(404, "not_found", f"no model version {version!r} for account {account!r}")
    return web.json_response({"active": version})


def routes() -> list[web.RouteDef]:
    return [
        web.post("/api/nlu/parse", parse),
        web.post("/api/nlu/examples", add_examples),
        web.post("/api/nlu/train", train),
        web.get("/api/nlu/jobs/{job}", job),
        web.get("/api/nlu/models", models),
        web.post("/api/nlu/models/{version}/activate", activate),
    ]
