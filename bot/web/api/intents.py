"""The REST API of intent training, what the console's Intents pages do: browse intents with
their examples and responses, add / edit / move / delete examples, add and delete intents,
import and export Rasa YAML (learning from customer messages and trying a text: ``learning.py``).
Training data lives as
``bot/nlu/training_set.py`` says; training and model versions are ``nlu.py``'s."""

from __future__ import annotations

from aiohttp import web

from bot import audit
from bot.keys import NLU, RESPONSES, STORE
from bot.nlu.formats import NluFormatError
from bot.nlu.training_set import INTENT_PATTERN, TrainingSet, TrainingSetError
from bot.web.api.kit import ACCOUNT, ApiRoutes, Call, api_error, reply
from conversations.agent_models import Agent

API = ApiRoutes()
MAX_YAML = 2_000_000
_INTENT = {"type": "string", "pattern": INTENT_PATTERN}
_TEXT = {
    "type": "string",
    "minLength": 1,
    "maxLength": 1000,
    "pattern": r"\S",
    "description": "the example; Rasa entity annotations such as `[Riga](city)` allowed",
}
_LANGUAGE = {"type": ["string", "null"], "pattern": "^[a-z]{2}$"}
_EXAMPLE = {
    "type": "object",
    "required": ["id", "intent", "text"],
    "properties": {
        "id": {"type": "string"},
        "intent": {"type": "string"},
        "text": {"type": "string"},
        "language": {"type": ["string", "null"]},
        "source": {"type": "string"},
        "message_id": {"type": ["string", "null"]},
    },
}
_SUMMARY = {
    "type": "object",
    "required": ["name", "examples"],
    "properties": {
        "name": {"type": "string"},
        "examples": {"type": "integer"},
        "escalates": {"type": "boolean"},
        "response_languages": {"type": "array", "items": {"type": "string"}},
    },
}
_INTENT_DOC = {
    "type": "object",
    "required": ["name", "examples"],
    "properties": {
        "name": {"type": "string"},
        "examples": {"type": "array", "items": _EXAMPLE},
        "escalates": {"type": "boolean"},
        "responses": {"type": "object", "description": "language -> answer variants (config/responses.yml)"},
        "titles": {"type": "object"},
    },
}


def training_set(app: web.Application, account_id: str, actor: Agent | str = audit.SYSTEM) -> TrainingSet:
    return TrainingSet(app[STORE], account_id, app[NLU].data_paths(), app[RESPONSES], actor)


def _data(request: web.Request, call: Call) -> TrainingSet:
    return training_set(request.app, account_of(call), call.principal.audit_actor)


def failed(exc: TrainingSetError) -> web.HTTPException:
    return api_error(
        exc.status, "not_found" if exc.status == 404 else "conflict" if exc.status == 409 else "bad_request", str(exc)
    )


def account_of(call: Call) -> str:
    assert call.account_id is not None
    return call.account_id


@API(
    "GET",
    "/api/intents",
    "The account's intents with their number of examples",
    tag="intents",
    query=(ACCOUNT,),
    response={
        "type": "object",
        "required": ["intents"],
        "properties": {"intents": {"type": "array", "items": _SUMMARY}},
    },
)
async def list_intents(request: web.Request, call: Call) -> web.Response:
    found = await _data(request, call).intents()
    return reply(
        {
            "intents": [
                {
                    "name": i.name,
                    "examples": i.examples,
                    "escalates": i.escalates,
                    "response_languages": list(i.languages),
                }
                for i in found
            ]
        }
    )


@API(
    "POST",
    "/api/intents",
    "Add an intent (then add its examples)",
    tag="intents",
    status=201,
    errors=(409,),
    query=(ACCOUNT,),
    response={"type": "object", "properties": {"name": {"type": "string"}}},
    body={"type": "object", "required": ["name"], "additionalProperties": False, "properties": {"name": _INTENT}},
)
async def create_intent(request: web.Request, call: Call) -> web.Response:
    try:
        name = await _data(request, call).add_intent(call.body["name"])
    except TrainingSetError as exc:
        raise failed(exc) from None
    return reply({"name": name}, status=201)


@API(
    "GET",
    "/api/intents/{intent}",
    "An intent's examples and its responses per language",
    tag="intents",
    query=(ACCOUNT,),
    response=_INTENT_DOC,
)
async def get_intent(request: web.Request, call: Call) -> web.Response:
    data, name = _data(request, call), request.match_info["intent"]
    try:
        await data.require_intent(name)
    except TrainingSetError as exc:
        raise failed(exc) from None
    responses = data.responses
    return reply(
        {
            "name": name,
            "examples": [e.to_json() for e in await data.examples(name)],
            "escalates": name in responses.escalate,
            "responses": responses.texts.get(name, {}),
            "titles": responses.titles.get(name, {}),
        }
    )


@API(
    "PUT",
    "/api/intents/{intent}",
    "Set an intent's examples (the intent is created if new)",
    tag="intents",
    query=(ACCOUNT,),
    errors=(409,),
    response={"type": "object", "properties": {"name": {"type": "string"}, "examples": {"type": "integer"}}},
    body={
        "type": "object",
        "required": ["examples"],
        "additionalProperties": False,
        "properties": {
            "examples": {
                "type": "array",
                "maxItems": 1000,
                "items": {
                    "type": "object",
                    "required": ["text"],
                    "additionalProperties": False,
                    "properties": {"text": _TEXT, "language": _LANGUAGE},
                },
            }
        },
    },
)
async def put_intent(request: web.Request, call: Call) -> web.Response:
    name = request.match_info["intent"]
    try:
        count = await _data(request, call).set_examples(
            name, [(item["text"], item.get("language")) for item in call.body["examples"]]
        )
    except TrainingSetError as exc:
        raise failed(exc) from None
    return reply({"name": name, "examples": count})


@API(
    "DELETE",
    "/api/intents/{intent}",
    "Delete an intent and its examples",
    tag="intents",
    query=(ACCOUNT,),
    response={"type": "object", "properties": {"deleted": {"type": "string"}, "examples": {"type": "integer"}}},
)
async def delete_intent(request: web.Request, call: Call) -> web.Response:
    name = request.match_info["intent"]
    try:
        removed = await _data(request, call).delete_intent(name)
    except TrainingSetError as exc:
        raise failed(exc) from None
    return reply({"deleted": name, "examples": removed})


@API(
    "POST",
    "/api/intents/{intent}/examples",
    "Add an example to an intent",
    tag="intents",
    status=201,
    query=(ACCOUNT,),
    errors=(409,),
    response=_EXAMPLE,
    body={
        "type": "object",
        "required": ["text"],
        "additionalProperties": False,
        "properties": {"text": _TEXT, "language": _LANGUAGE},
    },
)
async def add_intent_example(request: web.Request, call: Call) -> web.Response:
    data = _data(request, call)
    try:
        added = await data.add_example(
            request.match_info["intent"], call.body["text"], call.body.get("language"), source="api"
        )
    except TrainingSetError as exc:
        raise failed(exc) from None
    return reply(added.to_json(), status=201)


@API(
    "PATCH",
    "/api/intents/{intent}/examples/{example}",
    "Edit an example, or move it to another intent",
    tag="intents",
    query=(ACCOUNT,),
    errors=(409,),
    response=_EXAMPLE,
    body={
        "type": "object",
        "additionalProperties": False,
        "minProperties": 1,
        "properties": {
            "text": _TEXT,
            "intent": {**_INTENT, "description": "move it to this intent"},
            "language": _LANGUAGE,
        },
    },
)
async def edit_intent_example(request: web.Request, call: Call) -> web.Response:
    data, body = _data(request, call), call.body
    try:
        edited = await data.edit_example(
            request.match_info["example"],
            text=body.get("text"),
            intent=body.get("intent"),
            language=body.get("language"),
            of_intent=request.match_info["intent"],
        )
    except TrainingSetError as exc:
        raise failed(exc) from None
    return reply(edited.to_json())


@API(
    "DELETE",
    "/api/intents/{intent}/examples/{example}",
    "Delete an example",
    tag="intents",
    query=(ACCOUNT,),
    response={"type": "object", "properties": {"deleted": {"type": "string"}}},
)
async def delete_intent_example(request: web.Request, call: Call) -> web.Response:
    example = request.match_info["example"]
    try:
        await _data(request, call).delete_example(example, request.match_info["intent"])
    except TrainingSetError as exc:
        raise failed(exc) from None
    return reply({"deleted": example})


@API(
    "GET",
    "/api/nlu/export",
    "The account's training data as a Rasa NLU YAML file (sent as text/plain)",
    tag="intents",
    query=(ACCOUNT,),
    response=None,
)
async def export_training_data(request: web.Request, call: Call) -> web.Response:
    account = account_of(call)
    text = await training_set(request.app, account).export_yaml()
    # text/plain: the YAML is the file to save, not a document for clients to parse into a reply
    return web.Response(
        text=text,
        content_type="text/plain",
        headers={"Content-Disposition": f'attachment; filename="nlu-{account}.yml"'},
    )


@API(
    "POST",
    "/api/nlu/import",
    "Import Rasa NLU YAML: added to the account's data, or replacing it",
    tag="intents",
    query=(ACCOUNT,),
    response={"type": "object", "properties": {"added": {"type": "integer"}, "intents": {"type": "integer"}}},
    body={
        "type": "object",
        "required": ["yaml"],
        "additionalProperties": False,
        "properties": {
            "yaml": {"type": "string", "maxLength": MAX_YAML, "description": "the file's text"},
            "name": {"type": "string", "maxLength": 200, "description": "the file's name, for error messages"},
            "replace": {
                "type": "boolean",
                "default": False,
                "description": "replace every example of the account (default: add to them)",
            },
        },
    },
)
async def import_training_data(request: web.Request, call: Call) -> web.Response:
    body = call.body
    try:
        added, intents = await _data(request, call).import_yaml(
            body["yaml"], body.get("name") or "upload.yml", bool(body.get("replace"))
        )
    except NluFormatError as exc:
        raise api_error(400, "bad_file", str(exc)) from None
    return reply({"added": added, "intents": intents})
