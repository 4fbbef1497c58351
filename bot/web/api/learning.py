"""The REST API of learning from traffic, what the console's Learn and Try tabs do: the customer
messages the bot did not understand or humans handled, with the bot's guess; make one an example
of an intent (or dismiss it); and try a text (intent, confidence, entities and the answer the bot
would give, nothing sent). Intents and their examples are ``intents.py``'s."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from bot import audit
from bot.keys import NLU, RESPONSES, SETTINGS, STORE
from bot.nlu.data import OUT_OF_SCOPE, Parse
from bot.nlu.remote import NluUnavailable
from bot.nlu.training_set import INTENT_PATTERN, TrainingSetError
from bot.router.dialogue.content import carried_responses
from bot.router.policy import plan
from bot.web.api.intents import account_of, failed, training_set
from bot.web.api.kit import ACCOUNT, ApiRoutes, Call, api_error, reply
from conversations.agent_models import Agent
from conversations.models import from_epoch_ms, utcnow

API = ApiRoutes()


_REVIEW = {
    "type": "object",
    "required": ["id", "text"],
    "properties": {
        "id": {"type": "string"},
        "text": {"type": "string"},
        "channel": {"type": "string"},
        "created_at": {"type": ["string", "null"]},
        "action": {"type": ["string", "null"]},
        "reason": {"type": ["string", "null"]},
        "guess": {"type": ["string", "null"]},
        "confidence": {"type": ["number", "null"]},
    },
}


_TRY = {
    "type": "object",
    "required": ["text", "intent", "confidence", "reply"],
    "properties": {
        "text": {"type": "string"},
        "intent": {"type": "string"},
        "confidence": {"type": "number"},
        "entities": {"type": "array", "items": {"type": "object"}},
        "language": {"type": ["string", "null"]},
        "model_version": {"type": ["string", "null"]},
        "reply": {
            "type": "object",
            "required": ["action", "reason", "text"],
            "properties": {
                "action": {"enum": ["answered", "queued"]},
                "reason": {"type": "string"},
                "text": {"type": "string"},
                "language": {"type": "string"},
                "options": {"type": "array", "items": {"type": "string"}},
            },
        },
    },
}


async def try_text(app: web.Application, account_id: str, text: str) -> tuple[Parse, dict[str, Any]] | None:
    """What the bot makes of ``text`` and what it would answer (the dispatcher's policy, for a
    first message of a conversation); ``None`` without an active model. Sends nothing."""
    parse = await app[NLU].parse(account_id, text)
    if parse is None:
        return None
    responses = carried_responses(app[NLU].content(account_id), app[RESPONSES])  # the active version's
    language = responses.language(parse.language)
    chosen = plan(parse, responses, language, 1, f"try:{text}")
    answer = chosen.text
    if answer is None:
        answer = responses.line("handoff", language, app[SETTINGS].dispatch.queued_notice)
    return parse, {
        "action": "queued" if chosen.queue else "answered",
        "reason": chosen.reason,
        "text": answer,
        "language": language,
        "options": list(chosen.options),
    }


def review_item(doc: dict[str, Any]) -> dict[str, Any]:
    """A message to learn from, with the bot's guess (its best intent, even when it was unsure)."""
    nlu, decision = doc.get("nlu") or {}, doc.get("decision") or {}
    guess, confidence = nlu.get("intent"), nlu.get("confidence")
    if guess == OUT_OF_SCOPE and nlu.get("ranking"):
        guess, confidence = nlu["ranking"][0]["intent"], nlu["ranking"][0]["confidence"]
    created = doc.get("created_at")
    return {
        "id": str(doc["_id"]),
        "text": str(doc.get("text", "")),
        "channel": str(doc.get("channel", "")),
        "created_at": from_epoch_ms(created).isoformat() if isinstance(created, int) else None,
        "action": decision.get("action"),
        "reason": decision.get("reason"),
        "guess": guess,
        "confidence": confidence,
        "language": nlu.get("language"),
    }


async def learn(
    app: web.Application, account_id: str, message_id: str, intent: str | None, by: Agent | str
) -> dict[str, Any] | None:
    """Make a customer message an example of ``intent`` (``out_of_scope`` allowed), or with
    ``None`` dismiss it; the example keeps the message id (personal data). Returns the example."""
    store = app[STORE]
    message = await store.training.customer_message(account_id, message_id)
    if message is None:
        raise TrainingSetError(f"no customer message {message_id[:80]}", 404)
    if message.get("nlu_review"):
        raise TrainingSetError("this message was reviewed already", 409)
    example, by_name = None, by.login if isinstance(by, Agent) else by
    if intent is not None:
        language = (message.get("nlu") or {}).get("language")
        try:
            example = (
                await training_set(app, account_id, by).add_example(
                    intent, str(message.get("text", "")), language, message_id=message_id, source="learned"
                )
            ).to_json()
        except TrainingSetError as exc:
            if exc.status == 409:  # its text is an example already: nothing left to learn from it
                await store.training.mark_reviewed(message_id, "duplicate", by_name, utcnow())
            raise
    await store.training.mark_reviewed(message_id, intent or "dismissed", by_name, utcnow())
    # filed under the thread, so the contact's export shows it and an erasure anonymises it
    await audit.record(
        store,
        account_id,
        by,
        "nlu.learn",
        str(message.get("thread_id")),
        message=message_id,
        intent=intent or "dismissed",
    )
    return example


@API(
    "GET",
    "/api/nlu/review",
    "Customer messages the bot did not understand or humans handled, "
    "not yet reviewed, newest first, with the bot's guess",
    tag="intents",
    query=(ACCOUNT,),
    response={
        "type": "object",
        "required": ["messages"],
        "properties": {"messages": {"type": "array", "items": _REVIEW}},
    },
)
async def review_messages(request: web.Request, call: Call) -> web.Response:
    docs = await request.app[STORE].training.messages_to_review(account_of(call))
    return reply({"messages": [review_item(doc) for doc in docs]})


@API(
    "POST",
    "/api/nlu/review/{message_id}",
    "Learn from a customer message: make it an example of an "
    "intent (or of out_of_scope), or dismiss it with intent null",
    tag="intents",
    query=(ACCOUNT,),
    errors=(409,),
    response={"type": "object", "properties": {"example": {"type": ["object", "null"]}}},
    body={
        "type": "object",
        "required": ["intent"],
        "additionalProperties": False,
        "properties": {"intent": {"type": ["string", "null"], "pattern": INTENT_PATTERN}},
    },
)
async def review_message(request: web.Request, call: Call) -> web.Response:
    try:
        example = await learn(
            request.app,
            account_of(call),
            request.match_info["message_id"],
            call.body["intent"],
            call.principal.audit_actor,
        )
    except TrainingSetError as exc:
        raise failed(exc) from None
    return reply({"example": example})


@API(
    "POST",
    "/api/nlu/try",
    "What the bot would make of a text and answer (nothing is sent)",
    tag="intents",
    scope="read",
    query=(ACCOUNT,),
    errors=(409,),
    response=_TRY,
    body={
        "type": "object",
        "required": ["text"],
        "additionalProperties": False,
        "properties": {"text": {"type": "string", "minLength": 1, "maxLength": 4096, "pattern": r"\S"}},
    },
)
async def try_it(request: web.Request, call: Call) -> web.Response:
    text = call.body["text"]
    try:
        found = await try_text(request.app, account_of(call), text)
    except NluUnavailable as exc:
        return reply({"error": "nlu_unavailable", "detail": str(exc)}, status=503)
    if found is None:
        raise api_error(409, "no_model", "no NLU model is active for this account; train and activate one first")
    parse, answer = found
    return reply({"text": text, **parse.to_doc(), "reply": answer})
