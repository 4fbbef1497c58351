"""The command line's parser loads nothing heavy: ``--help`` and usage errors answer at once, and
each command's code is imported only when it runs."""

from __future__ import annotations

import argparse
import subprocess
import sys

from bot.cli.channels import BUILDERS
from bot.cli.parser import SIGNED_WEBHOOKS, Lazy, build

HEAVY = ("aiohttp", "pymongo", "numpy", "sklearn", "argon2", "bot.web", "bot.settings", "conversations.repositories")


def test_help_imports_none_of_the_router() -> None:
    script = (
        "import sys\n"
        "from bot.cli import main\n"
        "try:\n    main(['nlu', 'eval', '--help'])\nexcept SystemExit:\n    pass\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    assert "--target-rejection" in done.stdout
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_every_command_runs_code_that_exists() -> None:
    """Each ``Lazy`` names a function of its module (a rename would only show when the command runs)."""
    import importlib

    found = []
    stack = [build()]
    while stack:
        parser = stack.pop()
        run = parser.get_default("run")
        if isinstance(run, Lazy):
            found.append((run.module, run.name))
            assert callable(getattr(importlib.import_module(run.module), run.name)), (run.module, run.name)
        for action in parser._actions:  # argparse keeps its subcommands in these actions
            if isinstance(action, argparse._SubParsersAction):
                stack += list(action.choices.values())
    assert len(found) == 14, found  # every command and subcommand
    assert set(SIGNED_WEBHOOKS) == set(BUILDERS)
