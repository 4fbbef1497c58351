"""The REST API's machinery: who is calling, what each operation needs, and the checks of its query
and body against the same JSON Schemas that ``/api/openapi.json`` publishes.

Callers authenticate with ``Authorization: Bearer <token>``:

* a token an account's admin created (``omr_…``): that account's data only, with its scopes
  (``read`` for GET, ``write`` for the rest); tokens are stored as SHA-256 hashes;
* the install token (``api.token``, or the one generated on first start: ``bot/install_token.py``):
  every account (the superadmin's).

Nothing else authenticates: no cookie, and no address — a request from the loopback interface
without a token is refused like any other, so neither a page in a browser nor a URL the router is
made to call on itself acts as the superadmin.

A record of another account answers 404, as if it did not exist.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aiohttp import web
from jsonschema import Draft202012Validator

from bot import audit
from bot.handlers.kit.payload import load_json
from bot.handlers.kit.protocol import MalformedPayload
from bot.keys import INSTALL_TOKEN, SETTINGS, STORE
from bot.router.sanitize import storable
from bot.web.access import Access, mark
from conversations.agent_models import Agent, Role
from conversations.ids import new_id
from conversations.membership import sees, thread_match
from conversations.models import utcnow
from conversations.repositories import Repositories
from conversations.tenant_models import SCOPES, ApiToken
from conversations.thread_models import Message, Thread

TOKEN_PREFIX = "omr_"


def api_error(status: int, error: str, detail: str) -> web.HTTPException:
    """An HTTP error with the API's JSON body, to raise."""
    kinds: dict[int, type[web.HTTPException]] = {
        400: web.HTTPBadRequest,
        401: web.HTTPUnauthorized,
        403: web.HTTPForbidden,
        404: web.HTTPNotFound,
        409: web.HTTPConflict,
        413: web.HTTPRequestEntityTooLarge,
        415: web.HTTPUnsupportedMediaType,
        422: web.HTTPUnprocessableEntity,
        502: web.HTTPBadGateway,
    }
    kind = kinds.get(status, web.HTTPBadRequest)
    body = json.dumps({"error": error, "detail": detail})
    if kind is web.HTTPRequestEntityTooLarge:
        return web.HTTPRequestEntityTooLarge(max_size=0, actual_size=0, text=body, content_type="application/json")
    if kind is web.HTTPUnauthorized:
        return web.HTTPUnauthorized(text=body, content_type="application/json", headers={"WWW-Authenticate": "Bearer"})
    return kind(text=body, content_type="application/json")


def reply(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda v: json.dumps(v, default=_jsonable))


def _jsonable(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


# --- who is calling ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Principal:
    """The caller: an account's token, or the install-wide superadmin (``account_id`` ``None``)."""

    account_id: str | None
    token_id: str
    name: str
    scopes: tuple[str, ...] = SCOPES
    agent: Agent | None = None  # a token that acts for one agent: their role and inboxes

    def sees(self, thread: Thread) -> bool:
        """Whether the caller may see ``thread``: of their account and, for an agent's token, of
        the agent's inboxes."""
        return self.may_see(thread.account_id) and (self.agent is None or sees(self.agent, thread))

    def thread_match(self) -> dict[str, Any]:
        """The filter on threads that keeps what the caller sees (``membership.thread_match``)."""
        return thread_match(self.agent) if self.agent is not None else {}

    @property
    def superadmin(self) -> bool:
        return self.account_id is None

    def may_see(self, account_id: str) -> bool:
        return self.superadmin or account_id == self.account_id

    @property
    def audit_actor(self) -> str:
        """Who the audit log names: ``api`` (the install-wide token), ``api:<token name>``."""
        return audit.API if self.superadmin else f"{audit.API}:{self.name}"

    def actor(self, account_id: str) -> Agent:
        """Who the timeline names for a queue action taken through the API (an agent's token: the agent)."""
        if self.agent is not None:
            return self.agent
        role = Role.SUPERADMIN if self.superadmin else Role.ADMIN
        return Agent(
            id=f"api:{self.token_id}",
            account_id=account_id,
            login="api",
            name=f"API: {self.name}",
            role=role,
            created_at=utcnow(),
            active=True,
        )


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def issue_token(
    store: Repositories,
    account_id: str,
    name: str,
    scopes: list[str],
    created_by: Agent | str,
    acts_for: Agent | None = None,
) -> str:
    """A new API token of the account (``acts_for``: one that acts for that agent of it): stored as
    its SHA-256 only; the token is returned to be shown once."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    record = ApiToken(
        id=new_id("tok"),
        account_id=account_id,
        name=name,
        token_hash=hash_token(token),
        prefix=token[:8],
        created_at=utcnow(),
        scopes=[s for s in SCOPES if s in scopes],
        created_by=created_by.id if isinstance(created_by, Agent) else created_by,
        agent_id=acts_for.id if acts_for is not None else None,
    )
    await store.accounts.create_api_token(record)
    await audit.record(
        store, account_id, created_by, "token.create", record.id, scopes=",".join(record.scopes), agent=record.agent_id
    )
    return token


async def authenticate(request: web.Request) -> Principal:
    """The request's principal; raises 401 (no or a wrong token) or 403 (a disabled account)."""
    header = request.headers.get("Authorization", "")
    if not header:
        raise api_error(
            401, "unauthorized", "send Authorization: Bearer <token> (an account's API token or the install token)"
        )
    scheme, _, given = header.partition(" ")
    given = given.strip()
    if scheme.lower() != "bearer" or not given or not given.isascii():  # tokens are ASCII; bytes that are not
        raise api_error(401, "unauthorized", "the Authorization header must be: Bearer <token>")
    if await request.app[INSTALL_TOKEN].matches(given):
        return Principal(None, "install", "install token")
    store = request.app[STORE]
    token = await store.accounts.api_token_by_hash(hash_token(given)) if given.startswith(TOKEN_PREFIX) else None
    if token is None:
        raise api_error(401, "unauthorized", "unknown or revoked token")
    account = await store.accounts.get_account(token.account_id)
    if account is None or account.disabled:
        raise api_error(403, "account_disabled", f"account {token.account_id} is disabled")
    now_ms = int(time.time() * 1000)
    agent = await store.agents.get_agent(token.agent_id) if token.agent_id else None
    if token.agent_id and (agent is None or not agent.active or agent.account_id != token.account_id):
        raise api_error(401, "unauthorized", "the agent this token acts for is disabled or gone")
    if (token.last_used_ms or 0) < now_ms - 60_000:
        await store.accounts.touch_api_token(token.id, now_ms)
    return Principal(token.account_id, token.id, token.name, tuple(token.scopes), agent)


# --- operations -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Param:
    """A query parameter, with the JSON Schema its (converted) value must meet."""

    name: str
    schema: dict[str, Any]
    description: str


ACCOUNT = Param(
    "account",
    {"type": "string", "pattern": "^[a-z0-9][a-z0-9_-]{1,31}$"},
    "the account to act on: install-wide tokens only (default: `account.id`); an account's token may name only its own",
)
LIMIT = Param("limit", {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}, "how many, at most")
BEFORE = Param(
    "before",
    {"type": "string", "format": "date-time"},
    "only records older than this ISO 8601 time (the last one's time from the previous page)",
)
BEFORE_ID = Param(
    "before_id",
    {"type": "string", "minLength": 1, "maxLength": 64},
    "with `before`: the previous page's last id, so that records of that same time are neither "
    "skipped nor repeated (without it, those not on the previous page are left out)",
)


@dataclass(frozen=True)
class Call:
    """What a handler gets besides the request: the caller, the checked query and body, and the
    account an account-wide operation acts on."""

    principal: Principal
    query: dict[str, Any]
    body: Any
    account_id: str | None


ApiHandler = Callable[[web.Request, Call], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Operation:
    """One API route and what the OpenAPI document says about it."""

    method: str
    path: str
    summary: str
    tag: str
    handler: ApiHandler
    response: dict[str, Any] | None  # JSON Schema of the success body; None: a file
    status: int = 200
    scope: str = "read"
    superadmin: bool = False
    agents: bool = False  # an agent's token may call it (the conversation routes); other routes refuse one
    query: tuple[Param, ...] = ()
    body: dict[str, Any] | None = None
    errors: tuple[int, ...] = ()
    description: str = ""
    sanitize: bool = True  # text the store cannot hold (NUL, lone surrogates) is mended; False: refused

    @property
    def path_params(self) -> list[str]:
        return re.findall(r"{(\w+)}", self.path)


@dataclass
class ApiRoutes:
    """A module's API operations (like aiohttp's ``RouteTableDef``), registered by decorator."""

    operations: list[Operation] = field(default_factory=list)

    def __call__(
        self, method: str, path: str, summary: str, *, tag: str, response: dict[str, Any] | None, **options: Any
    ) -> Callable[[ApiHandler], ApiHandler]:
        scope = options.pop("scope", "read" if method == "GET" else "write")

        def register(handler: ApiHandler) -> ApiHandler:
            self.operations.append(Operation(method, path, summary, tag, handler, response, scope=scope, **options))
            return handler

        return register

    def routes(self) -> list[web.RouteDef]:
        return [
            web.route(op.method, op.path, _endpoint(op), **({"allow_head": False} if op.method == "GET" else {}))
            for op in self.operations
        ]


def _endpoint(op: Operation) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    query_checks = {p.name: (p, Draft202012Validator(p.schema)) for p in op.query}
    body_check = Draft202012Validator(op.body) if op.body is not None else None

    async def endpoint(request: web.Request) -> web.StreamResponse:
        principal = await authenticate(request)
        if op.superadmin and not principal.superadmin:
            raise api_error(403, "forbidden", "only the install token (the superadmin's) may do this")
        if op.scope not in principal.scopes:
            raise api_error(403, "forbidden", f"this token lacks the {op.scope} scope")
        if principal.agent is not None and not op.agents:
            raise api_error(403, "forbidden", "this token acts for an agent: it may use the conversation routes only")
        query = {name: _query_value(request, param, check) for name, (param, check) in query_checks.items()}
        query = {k: v for k, v in query.items() if v is not None}
        body = await _body(request, body_check, op.sanitize) if body_check is not None else None
        account_id = await _account(request, principal, query) if ACCOUNT in op.query else principal.account_id
        return await op.handler(request, Call(principal, query, body, account_id))

    return mark(endpoint, Access("token", scope=op.scope, superadmin=op.superadmin, agents=op.agents))


def _query_value(request: web.Request, param: Param, check: Draft202012Validator) -> Any:
    raw = request.query.get(param.name)
    if raw is None:
        return param.schema.get("default")
    value: Any = raw
    if param.schema.get("type") == "integer":
        if not re.fullmatch(r"-?[0-9]{1,12}", raw):
            raise api_error(400, "bad_request", f"{param.name} must be an integer")
        value = int(raw)
    elif param.schema.get("format") == "date-time":
        try:
            value = datetime.fromisoformat(raw)
        except ValueError:
            raise api_error(400, "bad_request", f"{param.name} must be an ISO 8601 time") from None
        if value.tzinfo is None:
            raise api_error(400, "bad_request", f"{param.name} needs a time zone (…Z or +00:00)")
        return value
    problem = next(iter(check.iter_errors(value)), None)
    if problem is not None:
        raise api_error(400, "bad_request", f"{param.name}: {_short(problem.message)}")
    return value


async def _body(request: web.Request, check: Draft202012Validator, sanitize: bool) -> Any:
    try:
        raw = load_json(await request.read() or b"null")
    except MalformedPayload as exc:
        raise api_error(400, "bad_request", str(exc)) from None
    body = storable(raw)  # lone surrogates become U+FFFD, NUL goes, integers past 64 bits become text
    if body is not raw and not sanitize:
        raise api_error(
            400,
            "bad_request",
            "the body holds text or numbers that cannot be stored (NUL, lone surrogates, integers past 64 bits)",
        )
    problem = next(iter(sorted(check.iter_errors(body), key=lambda e: list(e.path))), None)
    if problem is not None:
        where = ".".join(str(p) for p in problem.path) or "body"
        raise api_error(400, "bad_request", f"{where}: {_short(problem.message)}")
    return body


async def _account(request: web.Request, principal: Principal, query: dict[str, Any]) -> str:
    named = query.get("account")
    if not principal.superadmin:
        if named is not None and named != principal.account_id:
            raise api_error(403, "forbidden", f"this token belongs to account {principal.account_id}")
        assert principal.account_id is not None
        return principal.account_id
    account_id = str(named or request.app[SETTINGS].account.id)
    if named is not None and await request.app[STORE].accounts.get_account(account_id) is None:
        raise api_error(404, "not_found", f"no account {account_id}")
    return account_id


def _short(text: str) -> str:
    return text if len(text) <= 200 else text[:197] + "..."


def visible(principal: Principal, record: Any, what: str, record_id: str) -> Any:
    """``record`` if the caller may see it; otherwise (or if it is ``None``) a 404."""
    if record is None or not principal.may_see(str(record.account_id)):
        raise api_error(404, "not_found", f"no {what} {record_id}")
    return record


def visible_thread(principal: Principal, thread: Thread | None, thread_id: str) -> Thread:
    """The thread if the caller sees it (its account, and an agent's token its inboxes); else a 404."""
    if thread is None or not principal.sees(thread):
        raise api_error(404, "not_found", f"no thread {thread_id}")
    return thread


async def visible_message(request: web.Request, principal: Principal, message_id: str) -> Message:
    """The message if the caller sees its thread; else a 404."""
    store = request.app[STORE]
    message: Message = visible(principal, await store.messages.get_message(message_id), "message", message_id)
    thread = await store.threads.get_thread(message.thread_id) if principal.agent is not None else None
    if principal.agent is not None and (thread is None or not principal.sees(thread)):
        raise api_error(404, "not_found", f"no message {message_id}")
    return message
