"""The REST API of the NLU layer: parse, add examples, train (a background job with progress),
list model versions and activate one (every router process swaps to it within
``nlu.reload_interval``). Authenticated, scoped by account and documented like the rest of ``/api``."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from bot.keys import NLU, STORE
from bot.nlu.jobs import TrainingRunning
from bot.nlu.remote import NluUnavailable
from bot.web.api.kit import ACCOUNT, ApiRoutes, Call, api_error, reply
from conversations.models import from_epoch_ms, utcnow
from conversations.training import ForeignMessage

API = ApiRoutes()
MAX_EXAMPLES = 1000
_TEXT = {"type": "string", "minLength": 1, "maxLength": 4096, "pattern": r"\S"}
_NAME = {"type": "string", "minLength": 1, "maxLength": 200, "pattern": r"\S"}
_PARSE = {
    "type": "object",
    "required": ["text", "intent", "confidence"],
    "properties": {
        "text": {"type": "string"},
        "intent": {"type": "string", "description": "`out_of_scope` when nothing matched"},
        "confidence": {"type": "number"},
        "ambiguous": {"type": "boolean"},
        "language": {"type": ["string", "null"]},
        "entities": {"type": "array", "items": {"type": "object"}},
        "engine": {"type": "string"},
        "model_version": {"type": ["string", "null"]},
        "ranking": {
            "type": "array",
            "items": {"type": "object", "properties": {"intent": {"type": "string"}, "confidence": {"type": "number"}}},
        },
    },
}
_JOB = {
    "type": "object",
    "required": ["id", "state", "stage"],
    "properties": {
        "id": {"type": "string"},
        "account_id": {"type": "string"},
        "state": {"enum": ["running", "done", "failed"]},
        "stage": {"type": "string"},
        "done": {"type": "integer"},
        "total": {"type": "integer"},
        "version": {"type": ["string", "null"]},
        "error": {"type": ["string", "null"]},
        "method": {"type": "string", "description": "how the version's figures were measured"},
        "accuracy": {"type": "number", "description": "cross-validated accuracy of the version, percent"},
        "macro_f1": {"type": "number", "description": "cross-validated macro F1, percent"},
    },
}
_MODELS = {
    "type": "object",
    "required": ["active", "models"],
    "properties": {
        "active": {"type": ["string", "null"]},
        "models": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "version": {"type": "string"},
                    "active": {"type": "boolean"},
                    "metrics": {"type": "object"},
                    "learned_examples": {"type": "integer", "description": "examples learned from customer messages"},
                    "retired_at": {
                        "type": "string",
                        "description": "set when an erasure retired it (its blob is gone)",
                    },
                    "retired_by": {"type": "string", "description": "the erasure's receipt"},
                },
            },
        },
    },
}


def _plain(doc: dict[str, Any], id_name: str = "id") -> dict[str, Any]:
    """A stored document for JSON: ``_id`` renamed, times (epoch ms) in ISO 8601."""
    return {
        (id_name if key == "_id" else key): (
            from_epoch_ms(value).isoformat() if key.endswith("_at") and isinstance(value, int) else value
        )
        for key, value in doc.items()
    }


@API(
    "POST",
    "/api/nlu/parse",
    "What the bot understands in a text: intent, confidence, entities",
    tag="nlu",
    scope="read",
    query=(ACCOUNT,),
    response=_PARSE,
    errors=(409, 503),
    body={"type": "object", "required": ["text"], "additionalProperties": False, "properties": {"text": _TEXT}},
)
async def parse(request: web.Request, call: Call) -> web.Response:
    assert call.account_id is not None
    text = call.body["text"]
    try:
        result = await request.app[NLU].parse(call.account_id, text)
    except NluUnavailable as exc:
        return reply({"error": "nlu_unavailable", "detail": str(exc)}, status=503)
    if result is None:
        raise api_error(409, "no_model", "no NLU model is active for this account; train one first")
    return reply({"text": text, **result.to_doc()})


@API(
    "POST",
    "/api/nlu/examples",
    "Add training examples (used by the next training); a text that is "
    "an example already is skipped. A `message_id` must be one of the account's customer messages (400 "
    "otherwise): the example goes with that customer's data",
    tag="nlu",
    status=201,
    query=(ACCOUNT,),
    response={"type": "object", "properties": {"added": {"type": "integer"}}},
    body={
        "type": "object",
        "required": ["examples"],
        "additionalProperties": False,
        "properties": {
            "examples": {
                "type": "array",
                "minItems": 1,
                "maxItems": MAX_EXAMPLES,
                "items": {
                    "type": "object",
                    "required": ["text", "intent"],
                    "additionalProperties": False,
                    "properties": {
                        "text": _TEXT,
                        "intent": _NAME,
                        "language": {"type": ["string", "null"], "maxLength": 16},
                        "message_id": {
                            "type": "string",
                            "maxLength": 100,
                            "description": "the customer message it was learned from",
                        },
                    },
                },
            }
        },
    },
)
async def add_examples(request: web.Request, call: Call) -> web.Response:
    assert call.account_id is not None
    clean = [
        {
            "text": item["text"].strip(),
            "intent": item["intent"].strip(),
            "language": item.get("language"),
            "source": "api",
            **({"message_id": item["message_id"]} if item.get("message_id") else {}),
        }
        for item in call.body["examples"]
    ]
    try:
        count = len(await request.app[STORE].training.insert_nlu_examples(call.account_id, clean, utcnow()))
    except ForeignMessage as exc:
        raise api_error(400, "bad_request", str(exc)) from None
    return reply({"added": count}, status=201)


@API(
    "POST",
    "/api/nlu/train",
    "Train a model in the background; follow the returned job",
    tag="nlu",
    status=202,
    query=(ACCOUNT,),
    errors=(409,),
    response={
        "type": "object",
        "required": ["job", "url"],
        "properties": {"job": {"type": "string"}, "url": {"type": "string"}},
    },
    body={
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "activate": {
                "type": "boolean",
                "default": True,
                "description": "activate the new version when training succeeds",
            }
        },
    },
)
async def train(request: web.Request, call: Call) -> web.Response:
    assert call.account_id is not None
    nlu = request.app[NLU]
    if nlu.settings.engine != "embedded":
        raise api_error(409, "not_embedded", 'training needs nlu.engine = "embedded"')
    activate = call.body.get("activate", True)
    try:
        job = await nlu.start_job(nlu.train_request(call.account_id, activate=activate, by=call.principal.audit_actor))
    except TrainingRunning as exc:
        follow = f": follow /api/nlu/jobs/{exc.job}" if exc.job else ""
        raise api_error(409, "training_running", f"a training of this account is running{follow}") from None
    return reply({"job": job, "url": f"/api/nlu/jobs/{job}"}, status=202)


@API("GET", "/api/nlu/jobs/{job}", "A training job's progress and result", tag="nlu", response=_JOB)
async def job(request: web.Request, call: Call) -> web.Response:
    job_id = request.match_info["job"]
    doc = await request.app[STORE].nlu.get_nlu_job(job_id)
    if doc is None or not call.principal.may_see(str(doc.get("account_id"))):
        raise api_error(404, "not_found", f"no training job {job_id}")
    return reply(_plain(doc))


@API(
    "GET",
    "/api/nlu/models",
    "The account's model versions, newest first, and the active one",
    tag="nlu",
    query=(ACCOUNT,),
    response=_MODELS,
)
async def models(request: web.Request, call: Call) -> web.Response:
    assert call.account_id is not None
    store = request.app[STORE]
    active = await store.nlu.active_nlu_version(call.account_id)
    items = [
        {**_plain(doc, "version"), "active": doc["_id"] == active}
        for doc in await store.nlu.nlu_models(call.account_id)
    ]
    return reply({"active": active, "models": items})


@API(
    "POST",
    "/api/nlu/models/{version}/activate",
    "Activate (or roll back to) a model version; a version retired by an erasure cannot be (409)",
    tag="nlu",
    errors=(409,),
    response={"type": "object", "properties": {"active": {"type": "string"}}},
)
async def activate(request: web.Request, call: Call) -> web.Response:
    version = request.match_info["version"]
    model = await request.app[STORE].nlu.get_nlu_model(version)
    if model is None or not call.principal.may_see(str(model.get("account_id"))):
        raise api_error(404, "not_found", f"no model version {version}")
    if not await request.app[NLU].activate(str(model["account_id"]), version, by=call.principal.audit_actor):
        raise api_error(
            409,
            "retired",
            f"model version {version} was retired by {model.get('retired_by')}: "
            "it was trained on erased data; train a new one",
        )
    return reply({"active": version})
