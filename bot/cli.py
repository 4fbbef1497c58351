"""The ``omnirouter`` command: ``serve`` runs the router, ``say`` talks to a running one, ``nlu``
trains and tries the bot (see ``bot/nlu/cli.py``)."""

from __future__ import annotations

import argparse
import asyncio
import errno
import json
import os
import signal
import sys
import uuid
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from bot.cli_channels import BUILDERS, ChannelCliError, add_telegram_commands, say_webhook
from bot.agents_cli import agent_add as _agent_add
from bot.agents_cli import agent_reset_two_factor as _agent_reset_two_factor
from bot.api_token_cli import add_api_token_command
from bot.contacts_cli import add_contact_commands
from bot.install_token import InstallTokenError
from bot.keys import FIRST_ADMIN
from bot.logs import configure_logging
from bot.secret_key import SecretKeyError
from bot.nlu.cli import add_commands as add_nlu_commands
from bot.nlu.responses import ResponsesError
from bot.setting_fields import SettingsError
from bot.settings import Settings, load_settings
from conversations.embedded import EmbeddedStoreError
from conversations.errors import StoreUnavailable
from conversations.private_files import write_private


class CliError(Exception):
    """A problem to report in one line; ``code`` is the exit status."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    try:
        settings = _settings(args)
        result: int = args.run(args, settings)
        return result
    except SettingsError as exc:
        print(f"omnirouter: {exc}", file=sys.stderr)
        return 2
    except (CliError, ChannelCliError) as exc:
        print(f"omnirouter: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="omnirouter", description="Omnichannel conversation router.")
    parser.add_argument("--config", type=Path, help="settings file (default: config/omnirouter.toml if present)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the router")
    serve.add_argument("--host", help="address to listen on (server.host)")
    serve.add_argument("--port", type=int, help="port to listen on (server.port)")
    serve.add_argument("--log-format", choices=["text", "json"], help="log lines as text or JSON")
    serve.set_defaults(run=_serve)

    say = sub.add_parser("say", help="send a message to a running router as a customer would")
    say.add_argument("text", help="what the customer writes")
    say.add_argument("--as", dest="name", default="cli",
                     help="who is writing: a name (web chat), a phone number (sms), an address (email)")
    say.add_argument("--channel", choices=["webchat", "sms", "email", *BUILDERS], default="webchat",
                     help="the channel to write on (default: webchat; a signed webhook for the messengers)")
    say.add_argument("--subject", help="subject of the mail (--channel email)")
    say.add_argument("--server", help="router URL (default: from settings, http://127.0.0.1:8080)")
    say.add_argument("--account", help="account id (default: the configured one)")
    say.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the router")
    say.add_argument("--json", action="store_true", help="print the router's frames as JSON lines")
    say.add_argument("--from", dest="sender", help="sender address on the channel (Telegram user id, WhatsApp number)")
    say.set_defaults(run=_say)
    add_telegram_commands(sub)
    add_nlu_commands(sub, CliError)

    agent = sub.add_parser("agent", help="manage console agents")
    agent_sub = agent.add_subparsers(dest="agent_command", metavar="ACTION", required=True)
    add = agent_sub.add_parser("add", help="add an agent (prints the password once)")
    add.add_argument("login", metavar="NAME", help="login name: 2-32 of a-z 0-9 _ . -")
    add.add_argument("--role", choices=["agent", "admin", "superadmin"], default="agent",
                     help="superadmin: an admin who also manages the install's accounts")
    add.add_argument("--team", action="append", default=[], help="a team (skill); repeat for more")
    add.add_argument("--capacity", type=int, default=5, help="most conversations at once (default 5)")
    add.add_argument("--name", dest="display_name", help="name shown to colleagues (default: NAME)")
    add.add_argument("--account", help="account id (default: the configured one)")
    add.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    add.set_defaults(run=_agent_add)
    reset = agent_sub.add_parser("reset-2fa", help="take an agent's authenticator away (a lost phone)")
    reset.add_argument("login", metavar="LOGIN", help="the agent's login name")
    reset.add_argument("--account", help="account id (default: the configured one)")
    reset.set_defaults(run=_agent_reset_two_factor)
    add_contact_commands(sub)
    add_api_token_command(sub)
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    settings = load_settings(args.config)
    overrides = {
        key: value
        for key, value in {
            "host": getattr(args, "host", None),
            "port": getattr(args, "port", None),
            "log_format": getattr(args, "log_format", None),
        }.items()
        if value is not None
    }
    return settings.replace("server", **overrides) if overrides else settings


# --- serve ------------------------------------------------------------------------------------


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    configure_logging(settings.server.log_format, settings.server.log_level)
    try:
        asyncio.run(_run_server(settings))
    except EmbeddedStoreError as exc:
        raise CliError(str(exc)) from None
    except (SecretKeyError, ResponsesError, InstallTokenError) as exc:
        raise CliError(str(exc), code=2) from None
    except StoreUnavailable:
        where = settings.store.mongodb_uri or "the embedded store"
        raise CliError(f"cannot reach the store at {_redact(where)}; is MongoDB running?") from None
    return 0


async def _run_server(settings: Settings) -> None:
    from bot.app import create_app

    runner = web.AppRunner(create_app(settings), handle_signals=False, access_log=None)
    await runner.setup()
    host, port = settings.server.host, settings.server.port
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError as exc:
        await runner.cleanup()
        if exc.errno == errno.EADDRINUSE:
            raise CliError(
                f"port {port} on {host} is in use (another omnirouter?); "
                "choose another with --port or OMNIROUTER_PORT"
            ) from None
        raise CliError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    _print_banner(settings, runner.app[FIRST_ADMIN])
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        print("omnirouter: stopping…", file=sys.stderr)
        await runner.cleanup()


def _print_banner(settings: Settings, first_admin: tuple[str, str] | None) -> None:
    base = settings.server.local_url
    store = (
        f"embedded, data in {settings.store.embedded_dir}/"
        if not settings.store.mongodb_uri
        else f"MongoDB at {_redact(settings.store.mongodb_uri)}"
    )
    say = "" if base == "http://127.0.0.1:8080" else f" --server {base}"
    token_at = "api.token (settings)" if settings.api.token else settings.api.token_file
    print(
        f"omnirouter is running on {base} (store: {store})\n"
        f"  web chat:  {base}/chat\n"
        f"  health:    {base}/healthz    metrics: {base}/metrics\n"
        f"  try it:    .venv/bin/omnirouter say \"where is my order?\"{say}\n"
        f"  console:   {base}/console\n"
        f"  API:       {base}/api    install token (superadmin): {token_at}",
        flush=True,
    )
    if first_admin is not None:
        _show_first_admin(settings, *first_admin)
    print("Stop with Ctrl+C.", flush=True)


def _show_first_admin(settings: Settings, login: str, password: str) -> None:
    """The first admin's password on the terminal; when the output is not one (a service's log, a
    pipe), in a file only its owner can read, and the output says where."""
    if sys.stdout.isatty():
        print(f"  first run: log in as {login!r} with password {password!r} — shown only this once;\n"
              "             add agents under Admin or with `omnirouter agent add NAME`", flush=True)
        return
    path = Path(settings.console.first_admin_file)
    try:
        write_private(path, f"login: {login}\npassword: {password}\n")
    except OSError as exc:
        print(f"  first run: could not write the admin's password to {path} ({exc.strerror}); "
              "add a superadmin with `omnirouter agent add NAME --role superadmin`", flush=True)
        return
    print(f"  first run: log in as {login!r} with the password in {path} (readable by this user only;\n"
          "             delete it once you have logged in); add agents under Admin or with "
          "`omnirouter agent add NAME`", flush=True)


def _redact(uri: str) -> str:
    """A MongoDB URI without its password."""
    scheme, sep, rest = uri.partition("://")
    if "@" in rest:
        creds, _, host = rest.rpartition("@")
        user = creds.split(":", 1)[0]
        return f"{scheme}{sep}{user}:***@{host}"
    return uri


# --- say --------------------------------------------------------------------------------------


def _say(args: argparse.Namespace, settings: Settings) -> int:
    server = (args.server or settings.server.local_url).rstrip("/")
    if not server.startswith(("http://", "https://")):
        raise CliError(f"--server must be an http:// or https:// URL, got {server!r}", code=2)
    if not args.text.strip():
        raise CliError("the message is empty", code=2)
    account = args.account or settings.account.id
    if args.channel in ("sms", "email"):
        return _say_over_channel(server, account, args, settings)
    if args.channel != "webchat":
        return say_webhook(server, account, settings, args)
    return asyncio.run(_say_over_socket(server, account, args))


def _say_over_channel(server: str, account: str, args: argparse.Namespace, settings: Settings) -> int:
    from bot.say_channels import SayError, say_over_channel

    try:
        lines = asyncio.run(say_over_channel(args.channel, args.text, args.name, server, account, settings,
                                             args.timeout, args.subject))
    except SayError as exc:
        raise CliError(str(exc), exc.code) from None
    except (aiohttp.ClientConnectionError, OSError) as exc:
        raise _unreachable(server, exc) from None
    print("\n".join(lines))
    return 0


def _unreachable(server: str, exc: BaseException) -> CliError:
    return CliError(f"cannot reach the router at {server} ({exc.__class__.__name__}); is `omnirouter serve` running?")


def _token_file() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "omnirouter" / "say-visitors.json"


def _load_tokens() -> dict[str, str]:
    try:
        data = json.loads(_token_file().read_text())
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _save_token(key: str, token: str) -> None:
    tokens = _load_tokens()
    tokens[key] = token
    path = _token_file()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(tokens, indent=1))
    except OSError:
        pass  # the next `say` simply starts a new conversation


async def _say_over_socket(server: str, account: str, args: argparse.Namespace) -> int:
    key = f"{server}|{account}|{args.name}"
    params = {"account": account, "name": args.name, "token": _load_tokens().get(key, "")}
    ws_url = server.replace("http", "ws", 1) + "/webchat/ws"
    client_id = uuid.uuid4().hex
    timeout = aiohttp.ClientTimeout(total=None, connect=args.timeout)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as session:
            async with session.ws_connect(ws_url, params=params, heartbeat=30) as ws:
                return await asyncio.wait_for(_converse(ws, key, client_id, args), args.timeout)
    except aiohttp.WSServerHandshakeError as exc:
        detail = "unknown account" if exc.status == 404 else f"HTTP {exc.status}"
        raise CliError(f"the router at {server} refused the web chat connection: {detail}", code=2) from None
    except (aiohttp.ClientConnectionError, OSError) as exc:
        raise _unreachable(server, exc) from None
    except TimeoutError:
        raise CliError(f"the router at {server} did not answer within {args.timeout:g} s") from None


async def _converse(ws: aiohttp.ClientWebSocketResponse, key: str, client_id: str, args: argparse.Namespace) -> int:
    """Send one message; print the ack, the decision and the replies it names."""
    sent = False
    awaiting: set[str] | None = None  # reply ids named by the decision, not yet seen
    seen: dict[str, dict[str, Any]] = {}
    async for frame in ws:
        if frame.type != aiohttp.WSMsgType.TEXT:
            raise CliError("the router closed the connection", code=1)
        event = json.loads(frame.data)
        if args.json:
            print(json.dumps(event, ensure_ascii=False), flush=True)
        kind = event.get("type")
        if kind == "welcome" and not sent:
            _save_token(key, event["visitor_token"])
            await ws.send_json({"type": "message", "id": client_id, "text": args.text})
            sent = True
        elif kind == "error" and event.get("id") == client_id:
            if event.get("retry"):
                raise CliError(f"the router could not take the message: {event.get('detail')}", code=1)
            raise CliError(f"the router rejected the message: {event.get('detail')}", code=2)
        elif kind == "ack" and event.get("id") == client_id and not args.json:
            dup = " (already received before)" if event.get("duplicate") else ""
            print(f"recorded as {event['message_id']} in thread {event['thread_id']}{dup}")
        elif kind == "message" and event.get("direction") == "out":
            seen[event["message_id"]] = event
        elif kind == "decision" and event.get("id") == client_id:
            if not args.json:
                print(_describe(event))
            awaiting = set(event.get("replies", []))
        if awaiting is not None:
            for message_id in sorted(awaiting & seen.keys()):
                if not args.json:
                    reply = seen[message_id]
                    print(f"{reply.get('sender', 'bot')}: {reply['text']}")
                    for number, option in enumerate(reply.get("options") or [], start=1):
                        print(f"  [{number}] {option}")
                awaiting.discard(message_id)
            if not awaiting:
                return 0
    raise CliError("the router closed the connection before answering", code=1)


def _describe(decision: dict[str, Any]) -> str:
    thread = decision.get("thread_id")
    action = decision.get("action")
    if action == "queued":
        return f"queued for a human agent (reason: {decision.get('reason')}), thread {thread}"
    if action == "waiting":
        return f"added to thread {thread}, which is already waiting for a human agent"
    if action == "to_agent":
        return f"passed to the agent handling thread {thread}"
    if action == "answered" and decision.get("reason") == "fallback":
        return f"the bot did not understand and asked the customer to rephrase, thread {thread}"
    if action == "answered" and decision.get("reason") == "clarify":
        return f"the bot asked which of several things the customer meant, thread {thread}"
    if action == "answered":
        return f"answered by the bot (intent: {decision.get('reason')}), thread {thread}"
    return f"{action}: {decision.get('reason')} (thread {thread})"


if __name__ == "__main__":
    sys.exit(main())
