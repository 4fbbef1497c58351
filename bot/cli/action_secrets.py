"""``omnirouter action-secret NAME [--account ID]``: store a secret an HTTP action's headers name
as ``{secret:NAME}`` (an API key of the business's order system), sealed in the store like every
install secret: for the install's own dialogue files, or with ``--account`` for the content that
account's admins publish in the console (which never reads the install's). The value is read from
standard input, so it is in no file and no shell history."""

from __future__ import annotations

import argparse
import re
import sys

from bot.cli.common import CliError, run_with_store
from bot.router.dialogue.http_actions import action_secret
from bot.secret_key import SecretKeyError, open_sealer
from bot.settings import Settings
from conversations.repositories import Repositories

_NAME = re.compile(r"[\w-]{1,64}")


def store_secret(args: argparse.Namespace, settings: Settings) -> int:
    if not _NAME.fullmatch(args.name):
        raise CliError("NAME is 1-64 letters, digits, _ and -", 2)
    if sys.stdin.isatty():
        print(f"Value of {args.name} (then Enter): ", end="", file=sys.stderr, flush=True)
    value = sys.stdin.readline().rstrip("\r\n")
    if not value:
        raise CliError("no value on standard input", 2)

    async def work(store: Repositories) -> int:
        if args.account is not None and await store.accounts.get_account(args.account) is None:
            raise CliError(f"no account {args.account}", 2)
        try:
            await open_sealer(settings.security, store)
        except SecretKeyError as exc:
            raise CliError(str(exc), 2) from None
        await store.secrets.replace_sealed_secret(action_secret(args.name, args.account), value)
        whose = f" for account {args.account}" if args.account is not None else ""
        print(f"stored {args.name}{whose} (sealed)", file=sys.stderr)
        return 0

    return run_with_store(settings, work)
