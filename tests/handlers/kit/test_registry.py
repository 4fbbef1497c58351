"""Every registered channel is built as docs/development.md says a channel is added: a package with
its adapter, settings section and enabled() check, one registry line, its tests (and fixtures) under
tests/handlers/<name>/, its page docs/channels/<name>.md."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from bot.handlers.kit.protocol import ChannelAdapter
from bot.handlers.registry import CHANNELS
from bot.settings import Settings

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize("name", list(CHANNELS))
def test_each_channel_has_its_package_parts_tests_and_page(name: str) -> None:
    package = ROOT / "bot" / "handlers" / name
    assert {"__init__.py", "adapter.py", "settings.py"} <= {p.name for p in package.glob("*.py")}
    card = CHANNELS[name]
    assert card.name == name
    module, _, class_name = card.adapter.partition(":")
    assert module == f"bot.handlers.{name}.adapter"
    adapter = getattr(importlib.import_module(module), class_name)
    assert adapter.name == name and isinstance(adapter, type)
    members = ("verify", "send", "routes", "start", "bind", "shutdown", "background", "close")
    assert all(hasattr(adapter, member) for member in members), f"{name}: not a {ChannelAdapter.__name__}"
    for section, kind in card.sections.items():  # assembled into the install's settings, defaults on
        assert isinstance(Settings().named(section), kind) and isinstance(Settings().section(kind), kind)
    assert card.enabled(Settings()) is (name == "webchat")  # only the web chat needs no configuration
    assert list((ROOT / "tests" / "handlers" / name).glob("test_*.py"))
    assert (ROOT / "docs" / "channels" / f"{name}.md").read_text().startswith("# ")


def test_the_settings_sections_come_from_the_registry_once_each() -> None:
    from bot.settings import env_names

    names = env_names()
    assert names["OMNIROUTER_TELEGRAM_TOKEN"] == ("telegram", "token")
    assert names["OMNIROUTER_TWILIO_AUTH_TOKEN"] == ("twilio", "auth_token")
    assert names["OMNIROUTER_VOICE_ENABLED"] == ("voice", "enabled")


def test_no_channel_module_imports_the_pipeline_web_app_cli_or_keys() -> None:
    """Channels reach the core through the sink only; lazy and TYPE_CHECKING imports count too."""
    import ast

    forbidden = ("bot.router", "bot.web", "bot.app", "bot.cli", "bot.keys")
    found = []
    for path in (ROOT / "bot" / "handlers").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            found += [f"{path.relative_to(ROOT)}: {n}" for n in names if n == "bot" or n.startswith(forbidden)]
    assert found == []


def test_the_smallest_channel_is_its_package_and_one_registry_line() -> None:
    """docs/development.md's promise, kept by voice: outside its own package, nothing in the
    product names it but the registry's line (its settings section reaches ``Settings`` from there)."""
    import re

    mentions = [
        f"{path.relative_to(ROOT)}:{n}"
        for path in (ROOT / "bot").rglob("*.py")
        if ROOT / "bot" / "handlers" / "voice" not in path.parents
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"handlers(\.|\simport\s.*)voice\b|VoiceSettings|VoiceAdapter", line)
    ]
    assert mentions == ["bot/handlers/registry.py:11"]
    assert re.search(r'^    "voice": voice\.CHANNEL,$', (ROOT / "bot/handlers/registry.py").read_text(), re.M)
