"""``omnirouter contact export|erase ID``: a contact's personal data from the command line.

ID is a contact id (``con_…``), an identity (``sms:+37120000000``, ``email:ann@example.com``) or a
bare address. Works with the router running or not (see ``bot.cli.common.with_store``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from bot import audit
from bot.cli.common import CliError, run_with_store
from bot.services.contacts import ContactNotFound, erase_contact, export_contact, find_contact
from bot.settings import Settings
from conversations.personal_data import ContactScope
from conversations.private_files import write_private
from conversations.repositories import Repositories


def contact_export(args: argparse.Namespace, settings: Settings) -> int:
    if args.out is not None and args.out.is_dir():
        raise CliError(f"--out {args.out} is a directory; name a file", code=2)

    async def work(store: Repositories) -> int:
        scope = await _scope(store, args, settings)
        document = await export_contact(store, scope, audit.CLI)
        text = json.dumps(document, ensure_ascii=False, indent=1) + "\n"
        if args.out is None:
            sys.stdout.write(text)
            return 0
        try:
            await asyncio.to_thread(write_private, args.out, text)  # personal data: 0600
        except OSError as exc:
            raise CliError(f"cannot write {args.out}: {exc.strerror}", code=2) from None
        count = sum(len(docs) for docs in document["data"].values())
        print(f"exported contact {scope.contact_id} ({count} records) to {args.out}", file=sys.stderr)
        return 0

    return run_with_store(settings, work)


def contact_erase(args: argparse.Namespace, settings: Settings) -> int:
    if not args.yes and not sys.stdin.isatty():
        raise CliError("refusing to erase without --yes when standard input is not a terminal", code=2)

    async def work(store: Repositories) -> int:
        scope = await _scope(store, args, settings)
        if not args.yes:
            print(
                f"contact {scope.contact_id}: {', '.join(scope.identity_keys) or 'no identities'}; "
                f"{len(scope.thread_ids)} conversations, {len(scope.message_ids)} messages"
            )
            prompt = f"This erases the contact everywhere and cannot be undone. Type {scope.contact_id} to confirm: "
            try:
                typed = await asyncio.to_thread(input, prompt)
            except EOFError:
                typed = ""
            if typed.strip() != scope.contact_id:
                raise CliError("not confirmed: nothing was erased", code=1)
        result = await erase_contact(store, scope, audit.CLI, retrain=settings.nlu.engine == "embedded")
        print(
            f"erased contact {scope.contact_id}: {result.total} records removed or anonymised; "
            f"receipt {result.receipt} (in the audit log)"
        )
        for line in result.lines()[1:]:
            print(line)
        return 0

    return run_with_store(settings, work)


async def _scope(store: Repositories, args: argparse.Namespace, settings: Settings) -> ContactScope:
    account = args.account or settings.account.id
    if await store.accounts.get_account(account) is None:
        raise CliError(f"no account {account!r}", code=2)
    try:
        return await find_contact(store, account, args.ref)
    except ContactNotFound as exc:
        raise CliError(str(exc), code=2) from None
