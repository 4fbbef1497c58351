"""Extract, update and compile the console's and the web chat's translations with Babel.

    python scripts/translations.py extract   # the code and templates -> bot/web/translations/messages.pot
    python scripts/translations.py update    # the .pot merged into every language's messages.po
    python scripts/translations.py compile   # every messages.po -> messages.mo (a check: the app
                                             # compiles the .po in memory and needs no .mo)
    python scripts/translations.py init xx   # a new language xx (then add it to LANGUAGES)

``make translations`` runs extract and update. The keywords are one list for Python and Jinja2:
Python calls ``translate(lang, msg)``, templates ``_(msg)``; tests/web/test_translations.py
extracts with the same list to check the committed .pot is current (docs/translations.md).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from babel.messages.frontend import CommandLineInterface

ROOT = Path(__file__).resolve().parent.parent
CATALOGS = ROOT / "bot" / "web" / "translations"
TEMPLATE = CATALOGS / "messages.pot"
KEYWORDS = (
    "_",
    "gettext",
    "ngettext:1,2",
    "pgettext:1c,2",
    "N_",  # templates (and N_ marks in Python)
    "translate:2",
    "translate_plural:2,3",
    "translate_in:2c,3",  # Python: the language comes first
)


def pybabel(*args: str) -> None:
    status = CommandLineInterface().run(["pybabel", "--quiet", *args])
    if status:
        raise SystemExit(f"pybabel {args[0]} failed ({status})")


def extract(output: Path = TEMPLATE) -> None:
    keywords = [f"--keyword={keyword}" for keyword in KEYWORDS]
    os.chdir(ROOT)  # locations relative to the tree's root
    pybabel(
        "extract",
        f"--mapping-file={ROOT / 'babel.cfg'}",
        "--no-default-keywords",
        *keywords,
        "--sort-output",
        "--add-location=file",
        "--project=omnirouter",
        "--width=100",
        "--copyright-holder=the omnirouter authors",
        f"--output-file={output}",
        ".",
    )


def update() -> None:
    pybabel(
        "update",
        f"--input-file={TEMPLATE}",
        f"--output-dir={CATALOGS}",
        "--width=100",
        "--no-fuzzy-matching",
        "--ignore-obsolete",
    )


def compile_all() -> None:
    pybabel("compile", f"--directory={CATALOGS}", "--statistics")


def init(language: str) -> None:
    pybabel("init", f"--input-file={TEMPLATE}", f"--output-dir={CATALOGS}", f"--locale={language}", "--width=100")


def main(argv: list[str]) -> None:
    commands = {"extract": extract, "update": update, "compile": compile_all}
    if len(argv) == 2 and argv[0] == "init":
        init(argv[1])
    elif len(argv) == 1 and argv[0] in commands:
        commands[argv[0]]()
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
