"""The ``omnirouter`` command: ``serve`` runs the router, ``say`` talks to a running one as a
customer, ``agent``/``contact``/``api-token`` manage the install, ``telegram`` sets up a bot, ``nlu``
trains and tries the bot's language understanding.

This module is the exit statuses; ``bot.cli.parser`` declares every command and its arguments and
imports nothing heavy (``--help`` answers at once); each command group's code is a module of this
package (``serve``, ``say``, ``channels``, ``agents``, ``contacts``, ``api_token``, ``nlu``,
``stories``, ``action_secrets``), imported when its command runs, and what they share is
``bot.cli.common``.
"""

from __future__ import annotations

import sys

from bot.cli.parser import build


def main(argv: list[str] | None = None) -> int:
    parser = build()
    args = parser.parse_args(argv)  # --help and usage errors end here, before anything heavy loads
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    from bot.cli.common import CliError, settings_of  # the settings, the store: what commands share
    from bot.setting_fields import SettingsError

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


if __name__ == "__main__":
    sys.exit(main())
