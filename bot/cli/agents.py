"""``omnirouter agent add``: create a console login from the command line; ``omnirouter agent
reset-2fa``: take an agent's authenticator away, for the install's operator.

Works with the router running or not: on MongoDB it connects directly; on the embedded store it
starts the store itself, or, when a running router holds it, talks to that router's store.
"""

from __future__ import annotations

import argparse
import re
import sys

from bot import audit
from bot.cli.common import CliError, run_with_store
from bot.services.agents import add_agent, chosen_inboxes
from bot.services.teams import teams_of
from bot.settings import Settings
from conversations.agent_models import Role
from conversations.models import utcnow
from conversations.repositories import Repositories

_LOGIN = re.compile(r"^[a-z0-9][a-z0-9_.-]{1,31}$")


def agent_add(args: argparse.Namespace, settings: Settings) -> int:
    login = args.login.strip().lower()
    if not _LOGIN.match(login):
        raise CliError(f"bad agent name {args.login!r}: use 2-32 of a-z 0-9 _ . -", code=2)
    teams = teams_of(",".join(args.team))
    if teams is None:
        raise CliError("a team is one word of letters, digits, _ or -", code=2)
    if not 1 <= args.capacity <= 100:
        raise CliError("--capacity must be from 1 to 100", code=2)
    password = None
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
        if len(password) < 8:
            raise CliError("the password must have at least 8 characters", code=2)
    account = args.account or settings.account.id
    if args.role == "superadmin" and account != settings.account.id:
        raise CliError(f"a superadmin belongs to the install's own account ({settings.account.id})", code=2)

    async def work(store: Repositories) -> int:
        if account == settings.account.id:  # a fresh install: before the first `serve`
            await store.ensure_indexes()
            await store.accounts.ensure_account(account, settings.account.name, utcnow())
        elif await store.accounts.get_account(account) is None:
            raise CliError(f"no account {account!r}", code=2)
        try:
            inboxes = await chosen_inboxes(store, account, args.inbox)
        except ValueError as exc:
            raise CliError(f"{exc}: see the account's inboxes in the console (Admin → Inboxes)", code=2) from None
        agent, secret = await add_agent(
            store,
            account,
            login,
            name=args.display_name,
            role=Role(args.role),
            teams=teams,
            capacity=args.capacity,
            password=password,
            inboxes=inboxes,
        )
        if agent is None:
            raise CliError(f"an agent {login!r} already exists in account {account!r}", code=2)
        await audit.record(store, account, audit.CLI, "agent.create", agent.id, login=login, role=args.role)
        team_text = f", teams {', '.join(teams)}" if teams else ""
        inbox_text = f", inboxes {', '.join(inboxes)}" if inboxes is not None else ""
        print(f"added {args.role} {login!r} (capacity {args.capacity}{team_text}{inbox_text}) to account {account!r}")
        if password is None:
            print(f"password: {secret}   (shown only this once)")
        return 0

    return run_with_store(settings, work)


def agent_reset_two_factor(args: argparse.Namespace, settings: Settings) -> int:
    """Remove an agent's second factor and end their sessions (the store is all it needs: the
    sealed secret is deleted, never opened)."""
    login, account = args.login.strip().lower(), args.account or settings.account.id

    async def work(store: Repositories) -> int:
        agent = await store.agents.agent_by_login(account, login)
        if agent is None:
            raise CliError(f"no agent {login!r} in account {account!r}", code=2)
        if not await store.sign_in.remove_second_factor(agent.id):
            print(f"{login!r} in account {account!r} has no two-factor sign-in: nothing to reset")
            return 0
        await store.sign_in.delete_agent_sessions(agent.id)
        await audit.record(store, account, audit.CLI, "agent.second_factor_reset", agent.id, login=login)
        print(
            f"two-factor sign-in of {login!r} in account {account!r} reset; they are logged out and log in "
            "with their password (and set it up again where the account requires it)"
        )
        return 0

    return run_with_store(settings, work)
