"""The ``omnirouter`` command: ``serve`` runs the router, ``say`` talks to a running one as a
customer, ``agent``/``contact``/``api-token`` manage the install, ``telegram`` sets up a bot, ``nlu``
trains and tries the bot's language understanding.

This module is the parser and the exit statuses; each command group is a module of this package
(``serve``, ``say``, ``channels``, ``agents``, ``contacts``, ``api_token``, ``nlu``), and what they
share is ``bot.cli.common``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bot.cli.action_secrets import add_action_secret_command
from bot.cli.agents import add_agent_commands
from bot.cli.api_token import add_api_token_command
from bot.cli.channels import add_telegram_commands
from bot.cli.common import CliError, settings_of
from bot.cli.contacts import add_contact_commands
from bot.cli.nlu import add_nlu_commands
from bot.cli.say import add_say_command
from bot.cli.serve import add_serve_command
from bot.setting_fields import SettingsError


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    try:
        settings = settings_of(args)
        result: int = args.run(args, settings)
        return result
    except SettingsError as exc:
        print(f"omnirouter: {exc}", file=sys.stderr)
        return 2
    except CliError as exc:
        print(f"omnirouter: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
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


if __name__ == "__main__":
    sys.exit(main())
