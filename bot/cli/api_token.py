"""``omnirouter api-token [--rotate]``: where the install token is, and a new one.

The install token (``bot/install_token.py``) is the superadmin's credential for ``/api``. Without
``--rotate`` the command says where it is — never the token itself: it stays in its 0600 file.
``--rotate`` replaces it in the store and in the file; every running router accepts only the new
one within seconds. Works with the router running or not, like ``agent add``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bot.cli.common import CliError, run_with_store
from bot.install_token import REFRESH_SECONDS, InstallTokenError, rotate
from bot.secret_key import SecretKeyError, open_sealer
from bot.settings import Settings
from conversations.repositories import Repositories


def api_token(args: argparse.Namespace, settings: Settings) -> int:
    if settings.api.token:
        if args.rotate:
            raise CliError("api.token is set in the settings: change it there (and in every router process)", code=2)
        print(
            "the install token is api.token from the settings (or OMNIROUTER_API_TOKEN); "
            "send it as: Authorization: Bearer <token>"
        )
        return 0
    if args.rotate:
        return run_with_store(settings, lambda store: _rotate(settings, store))
    path = Path(settings.api.token_file)
    if not path.is_file():
        raise CliError(
            f"no install token file at {path}: the router writes it on its first start "
            "(or make one with `omnirouter api-token --rotate`)",
            code=2,
        )
    print(
        f"the install token is in {path} (mode {path.stat().st_mode & 0o777:04o}); "
        f"send it as: Authorization: Bearer $(cat {path})"
    )
    return 0


async def _rotate(settings: Settings, store: Repositories) -> int:
    try:
        await open_sealer(settings.security, store)
        path = await rotate(settings.api, store)
    except (SecretKeyError, InstallTokenError) as exc:
        raise CliError(str(exc), code=2) from None
    print(
        f"a new install token is in {path} (mode 0600); running routers refuse the old one "
        f"within {REFRESH_SECONDS:g} seconds"
    )
    return 0
