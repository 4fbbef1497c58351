"""The configuration reference of the docs, written from the settings' own descriptions.

``python -m bot.settings_reference`` rewrites the table between the two markers of
``docs/configuration.md`` from ``bot.settings.describe()`` (key, environment variable, default,
description); the prose around it is written by hand. ``--check`` only compares, and exits 1 when
the page is not what the settings say (the tests run the same comparison), so a setting added or
changed in code without its reference is caught.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from bot.settings import describe

PAGE = Path(__file__).resolve().parent.parent / "docs" / "configuration.md"
BEGIN = "<!-- settings reference: written by `python -m bot.settings_reference`; do not edit by hand -->"
END = "<!-- end of settings reference -->"
_LONGEST_DEFAULT = 24


def _default(value: Any) -> str:
    """A default as the settings file writes it: TOML-like, long texts shortened."""
    if value is None:
        return "none"
    text = json.dumps(value, ensure_ascii=False)
    if isinstance(value, str) and len(value) > _LONGEST_DEFAULT:
        return json.dumps(value[: _LONGEST_DEFAULT - 2], ensure_ascii=False)[:-1] + '…"'
    return f"`{text}`"


def table() -> str:
    """The reference: one row per setting, in the order of the settings' sections."""
    rows = ["| key | environment | default | what it is |", "|---|---|---|---|"]
    for key, env, default, doc in describe():
        cell = doc.replace("|", "\\|")
        rows.append(f"| `{key}` | `{env}` | {_default(default)} | {cell} |")
    return "\n".join(rows) + "\n"


def render(page: str) -> str:
    """``page`` with the text between the markers replaced by the current table."""
    head, found, rest = page.partition(BEGIN)
    _, found_end, tail = rest.partition(END)
    if not (found and found_end):
        raise ValueError(f"the page lacks the markers {BEGIN!r} and {END!r}")
    return f"{head}{BEGIN}\n\n{table()}\n{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot.settings_reference", description=__doc__)
    parser.add_argument("--check", action="store_true", help="compare only; exit 1 when the page is stale")
    parser.add_argument("--page", type=Path, default=PAGE, help="the page to write (default: docs/configuration.md)")
    args = parser.parse_args(argv)
    current = args.page.read_text(encoding="utf-8")
    wanted = render(current)
    if args.check:
        if current != wanted:
            print(f"{args.page} is stale: run python -m bot.settings_reference", file=sys.stderr)
            return 1
        return 0
    if current != wanted:
        args.page.write_text(wanted, encoding="utf-8")
        print(f"wrote {args.page}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
