"""The documentation site builds with ``mkdocs build --strict`` (a broken link, a missing anchor or
a page left out of the nav fails it), and its configuration reference is what the settings say."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from bot import settings_reference
from bot.settings import describe

ROOT = Path(__file__).resolve().parent.parent


def test_the_site_builds_strictly(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "site" / "configuration" / "index.html").is_file()


def test_every_page_is_in_the_nav() -> None:
    nav = (ROOT / "mkdocs.yml").read_text()
    pages = [p.relative_to(ROOT / "docs").as_posix() for p in (ROOT / "docs").rglob("*.md")]
    assert pages
    for page in pages:
        assert f": {page}\n" in nav, f"{page} is not in mkdocs.yml's nav"


def test_the_configuration_reference_is_current() -> None:
    page = settings_reference.PAGE.read_text(encoding="utf-8")
    assert page == settings_reference.render(page), "run: python -m bot.settings_reference"
    for key, env, _, doc in describe():
        assert doc, f"{key} has no description"
        assert f"| `{key}` | `{env}` |" in page


def test_the_readme_stays_short() -> None:
    assert (ROOT / "README.md").read_text().count("\n") <= 300
