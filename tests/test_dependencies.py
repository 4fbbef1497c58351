"""Every third-party module the router imports comes from a distribution pyproject.toml declares:
one that only arrives as another package's dependency (multidict through aiohttp, pydantic through
aiogram) can disappear or change under us when that package changes its own."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIRST_PARTY = {"bot", "conversations"}


def imported_modules() -> dict[str, set[str]]:
    """Top-level module -> the files of bot/ and conversations/ importing it (absolute imports,
    lazy and ``TYPE_CHECKING`` ones included; the standard library and our own packages left out)."""
    found: dict[str, set[str]] = {}
    for package in sorted(FIRST_PARTY):
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    top = name.partition(".")[0]
                    if top not in sys.stdlib_module_names and top not in FIRST_PARTY:
                        found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return found


def normalised(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def declared() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return {
        normalised(re.split(r"[\s<>=!~;\[(]", requirement, maxsplit=1)[0]) for requirement in project["dependencies"]
    }


def test_every_imported_package_is_declared() -> None:
    providers = packages_distributions()
    wanted = declared()
    imported = imported_modules()
    assert {"aiohttp", "pymongo", "httpx_aiohttp"} <= set(imported)  # the scan sees what we know we import
    undeclared = {
        module: sorted(files)[:3]
        for module, files in imported.items()
        if not {normalised(d) for d in providers.get(module, [])} & wanted
    }
    assert undeclared == {}, "declare these in pyproject.toml [project] dependencies"
