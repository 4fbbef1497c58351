"""The ``omnirouter`` command line as argparse sees it: every command, its arguments and its help,
and, for each, where the code that runs it lives (:class:`Lazy`: imported only when that command
runs). Nothing heavy is imported here, so ``omnirouter --help`` and a mistyped argument answer at
once instead of after the whole router (web app, store driver, NLU) has loaded.
"""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path
from typing import Any

from bot.nlu.data import OUT_OF_SCOPE

SIGNED_WEBHOOKS = ("telegram", "whatsapp")  # `say --channel` by a signed webhook: bot.cli.channels.BUILDERS


class Lazy:
    """A command's ``run(args, settings) -> exit status``, found in ``module`` when called."""

    def __init__(self, module: str, name: str) -> None:
        self.module, self.name = module, name

    def __call__(self, args: argparse.Namespace, settings: Any) -> int:
        run = getattr(importlib.import_module(self.module), self.name)
        result: int = run(args, settings)
        return result


def share(text: str) -> float:
    """A rejection share between 0 and 0.5 (argparse turns the ValueError into a one-line usage error)."""
    value = float(text)
    if not 0 <= value <= 0.5:
        raise ValueError(text)
    return value


def build() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="omnirouter", description="Omnichannel conversation router.")
    parser.add_argument("--config", type=Path, help="settings file (default: config/omnirouter.toml if present)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    add_serve_command(sub)
    add_say_command(sub)
    add_telegram_commands(sub)
    add_nlu_commands(sub)
    add_agent_commands(sub)
    add_contact_commands(sub)
    add_api_token_command(sub)
    add_action_secret_command(sub)
    return parser


def add_action_secret_command(sub: Any) -> None:
    command = sub.add_parser("action-secret", help="store a secret for HTTP actions' headers, read from stdin")
    command.add_argument("name", metavar="NAME", help="as the action's headers name it: {secret:NAME}")
    command.add_argument(
        "--account",
        help="for the HTTP actions an account's admins publish in the console (default: the install's files)",
    )
    command.set_defaults(run=Lazy("bot.cli.action_secrets", "store_secret"))


def add_agent_commands(sub: Any) -> None:
    agent = sub.add_parser("agent", help="manage console agents")
    agent_sub = agent.add_subparsers(dest="agent_command", metavar="ACTION", required=True)
    add = agent_sub.add_parser("add", help="add an agent (prints the password once)")
    add.add_argument("login", metavar="NAME", help="login name: 2-32 of a-z 0-9 _ . -")
    add.add_argument(
        "--role",
        choices=["agent", "supervisor", "admin", "superadmin"],
        default="agent",
        help="superadmin: an admin who also manages the install's accounts",
    )
    add.add_argument("--team", action="append", default=[], help="a team (skill); repeat for more")
    add.add_argument("--capacity", type=int, default=5, help="most conversations at once (default 5)")
    add.add_argument(
        "--inbox",
        action="append",
        help="an inbox whose conversations the agent sees (inb_... or first:<channel>); repeat for more "
        "(default: every inbox)",
    )
    add.add_argument("--name", dest="display_name", help="name shown to colleagues (default: NAME)")
    add.add_argument("--account", help="account id (default: the configured one)")
    add.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    add.set_defaults(run=Lazy("bot.cli.agents", "agent_add"))
    reset = agent_sub.add_parser("reset-2fa", help="take an agent's authenticator away (a lost phone)")
    reset.add_argument("login", metavar="LOGIN", help="the agent's login name")
    reset.add_argument("--account", help="account id (default: the configured one)")
    reset.set_defaults(run=Lazy("bot.cli.agents", "agent_reset_two_factor"))


def add_api_token_command(sub: Any) -> None:
    command = sub.add_parser(
        "api-token", help="show where the install token (the API's superadmin token) is, or replace it"
    )
    command.add_argument("--rotate", action="store_true", help="make a new token; the old one stops working")
    command.set_defaults(run=Lazy("bot.cli.api_token", "api_token"))


def add_telegram_commands(sub: Any) -> None:
    telegram = sub.add_parser("telegram", help="Telegram bot set-up")
    commands = telegram.add_subparsers(dest="telegram_command", metavar="COMMAND", required=True)
    hook = commands.add_parser("set-webhook", help="register the router's webhook URL and secret with Telegram")
    hook.add_argument("--url", help="webhook URL (default: server.public_url + /webhooks/telegram[/ACCOUNT])")
    hook.add_argument("--account", help="an account with its own bot (default: the configured one)")
    hook.add_argument("--token", help="that bot's token (default: telegram.token)")
    hook.add_argument("--secret", help="that bot's webhook secret (default: telegram.webhook_secret)")
    hook.add_argument("--drop-pending", action="store_true", help="discard updates Telegram holds for the bot")
    hook.set_defaults(run=Lazy("bot.cli.channels", "set_webhook"))
    info = commands.add_parser("webhook-info", help="show the webhook Telegram has for the bot")
    info.add_argument("--token", help="the bot's token (default: telegram.token)")
    info.set_defaults(run=Lazy("bot.cli.channels", "webhook_info"))


def add_contact_commands(sub: Any) -> None:
    contact = sub.add_parser("contact", help="export or erase a contact's personal data")
    actions = contact.add_subparsers(dest="contact_command", metavar="ACTION", required=True)
    export = actions.add_parser("export", help="everything held about a contact, as one JSON document")
    export.add_argument("ref", metavar="ID", help="contact id, channel:address, or an address")
    export.add_argument("--out", type=Path, help="write to FILE (readable by you only) instead of standard output")
    export.add_argument("--account", help="account id (default: the configured one)")
    export.set_defaults(run=Lazy("bot.cli.contacts", "contact_export"))
    erase = actions.add_parser("erase", help="erase a contact's data everywhere (cannot be undone)")
    erase.add_argument("ref", metavar="ID", help="contact id, channel:address, or an address")
    erase.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    erase.add_argument("--account", help="account id (default: the configured one)")
    erase.set_defaults(run=Lazy("bot.cli.contacts", "contact_erase"))


def add_say_command(sub: Any) -> None:
    say = sub.add_parser("say", help="send a message to a running router as a customer would")
    say.add_argument("text", help="what the customer writes")
    say.add_argument(
        "--as",
        dest="name",
        default="cli",
        help="who is writing: a name (web chat), a phone number (sms), an address (email)",
    )
    say.add_argument(
        "--channel",
        choices=["webchat", "sms", "email", *SIGNED_WEBHOOKS],
        default="webchat",
        help="the channel to write on (default: webchat; a signed webhook for the messengers)",
    )
    say.add_argument("--subject", help="subject of the mail (--channel email)")
    say.add_argument("--server", help="router URL (default: from settings, http://127.0.0.1:8080)")
    say.add_argument("--account", help="account id (default: the configured one)")
    say.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the router")
    say.add_argument("--json", action="store_true", help="print the router's frames as JSON lines")
    say.add_argument("--from", dest="sender", help="sender address on the channel (Telegram user id, WhatsApp number)")
    say.set_defaults(run=Lazy("bot.cli.say", "say"))


def add_serve_command(sub: Any) -> None:
    serve = sub.add_parser("serve", help="run the router")
    serve.add_argument("--host", help="address to listen on (server.host)")
    serve.add_argument("--port", type=int, help="port to listen on (server.port)")
    serve.add_argument("--log-format", choices=["text", "json"], help="log lines as text or JSON")
    serve.set_defaults(run=Lazy("bot.cli.serve", "serve"))


def add_story_command(commands: Any) -> None:
    stories = commands.add_parser("test-stories", help="run conversation tests (Rasa test stories) through the bot")
    stories.add_argument("files", nargs="+", type=Path, metavar="FILE", help="stories file (Rasa YAML)")
    stories.add_argument("--actions", metavar="URL", help="action server (default: dialogue.action_endpoint)")
    stories.add_argument("--no-semantic", action="store_true", help="train the lexical tier alone (faster)")
    stories.add_argument("--json", action="store_true", help="print one JSON object")
    stories.set_defaults(run=Lazy("bot.cli.stories", "run_stories"))


def add_nlu_commands(sub: Any) -> None:
    """Register ``nlu`` and its subcommands on the main parser's subparsers."""
    nlu = sub.add_parser("nlu", help="train, try and evaluate the bot's language understanding")
    commands = nlu.add_subparsers(dest="nlu_command", metavar="COMMAND", required=True)

    train = commands.add_parser("train", help="train a model from the training data and activate it")
    train.add_argument(
        "--data", action="append", metavar="PATH", help="file or directory (repeatable; default: nlu.data)"
    )
    train.add_argument("--account", help="account id (default: the configured one)")
    train.add_argument("--no-activate", action="store_true", help="store the new version without activating it")
    train.add_argument("--server", help="router URL, when a running router holds the store")
    train.set_defaults(run=Lazy("bot.cli.nlu", "train"))

    parse = commands.add_parser("parse", help="show what the active model makes of a text")
    parse.add_argument("text")
    parse.add_argument("--account", help="account id (default: the configured one)")
    parse.add_argument("--server", help="router URL, when a running router holds the store")
    parse.set_defaults(run=Lazy("bot.cli.nlu", "parse"))

    evaluate = commands.add_parser("eval", help="train on one file, evaluate on another")
    evaluate.add_argument("--train", required=True, type=Path, help="training data (JSONL or Rasa YAML)")
    evaluate.add_argument("--test", required=True, type=Path, help="test data")
    evaluate.add_argument("--val", type=Path, help="validation data for thresholds (default: from TRAIN)")
    evaluate.add_argument("--oos-label", default=OUT_OF_SCOPE, help="the intent name of out-of-scope examples")
    evaluate.add_argument(
        "--target-rejection",
        type=share,
        metavar="SHARE",
        help="without out-of-scope examples: the share of in-scope texts to reject (default: nlu.target_rejection)",
    )
    evaluate.add_argument("--no-semantic", action="store_true", help="the lexical tier alone")
    evaluate.add_argument("--json", action="store_true", help="print one JSON object")
    evaluate.set_defaults(run=Lazy("bot.cli.nlu", "evaluate"))

    add_story_command(commands)
