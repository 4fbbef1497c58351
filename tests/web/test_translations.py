"""Every string has every language: the committed catalogs are current with the code and
templates, complete in Latvian and Russian, free of fuzzy entries, keep each placeholder, and
compile (docs/translations.md)."""

from __future__ import annotations

import importlib.util
import re
import string
from pathlib import Path
from types import ModuleType

import pytest
from babel.messages.catalog import Catalog, Message
from babel.messages.pofile import read_po

from bot.web import i18n
from bot.web.chat.words import CHAT_WORDS, browser_language

ROOT = Path(__file__).resolve().parents[2]
STATIC = ROOT / "bot" / "web" / "static"


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("translations_script", ROOT / "scripts" / "translations.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _read(path: Path, locale: str | None = None) -> Catalog:
    with open(path, "rb") as source:
        return read_po(source, locale=locale)


def _keys(catalog: Catalog) -> set[tuple[object, str | None]]:
    return {(message.id, message.context) for message in catalog if message.id}


def _placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}


def _forms(message: Message) -> tuple[list[str], list[str]]:
    """The English forms of ``message`` and its translated forms."""
    ids = list(message.id) if isinstance(message.id, (tuple, list)) else [message.id]
    strings = list(message.string) if isinstance(message.string, (tuple, list)) else [message.string]
    return ids, strings


def test_the_template_is_current(tmp_path: Path) -> None:
    """A string added (or changed) in the code or a template without `make translations` fails here."""
    fresh = tmp_path / "messages.pot"
    _script().extract(fresh)
    committed = _read(i18n.TRANSLATIONS / "messages.pot")
    assert _keys(_read(fresh)) == _keys(committed), "run `make translations` and translate the new strings"


@pytest.mark.parametrize("lang", i18n.LANGUAGES)
def test_every_language_has_every_string(lang: str) -> None:
    template = _keys(_read(i18n.TRANSLATIONS / "messages.pot"))
    catalog = _read(i18n.TRANSLATIONS / lang / "LC_MESSAGES" / "messages.po", locale=lang)
    assert _keys(catalog) == template, f"{lang}: run `make translations` (the .po lags the .pot)"
    for message in catalog:
        if not message.id:
            continue
        assert not message.fuzzy, f"{lang}: fuzzy entry {message.id!r}"
        ids, strings = _forms(message)
        assert len(strings) == (catalog.num_plurals if len(ids) > 1 else 1), f"{lang}: {message.id!r} forms"
        if lang == "en" and not any(strings):
            continue  # English is the msgid itself
        assert all(strings), f"{lang}: {message.id!r} is not translated"
        expected = _placeholders(ids[-1]) | _placeholders(ids[0])
        for text in strings:
            found = _placeholders(text)
            assert found <= expected and (found == expected or len(ids) > 1), (
                f"{lang}: {text!r} has placeholders {found}, its msgid {expected}"
            )


def test_plural_forms_are_the_languages_own() -> None:
    assert i18n.catalog("lv").ngettext("{n} failed for good", "{n} failed for good", 3)
    assert (
        i18n.translate_plural(
            "ru",
            "Intent {intent} deleted with {n} example.",
            "Intent {intent} deleted with {n} examples.",
            1,
            intent="x",
        )
        == "Интент x удалён вместе с 1 примером."
    )
    examples = [
        i18n.translate_plural(
            "ru",
            "Contact erased ({n} record). Receipt: {receipt}",
            "Contact erased ({n} records). Receipt: {receipt}",
            n,
            receipt="r",
        )
        for n in (1, 3, 5, 21, 11)
    ]
    assert [re.search(r"\d+ (\w+)", text).group(1) for text in examples] == [
        "запись",
        "записи",
        "записей",
        "запись",
        "записей",
    ]  # type: ignore[union-attr]
    assert (
        i18n.translate_plural(
            "lv", "Messages older than {n} day are deleted.", "Messages older than {n} days are deleted.", 1
        )
        == "Ziņas, kas vecākas par 1 dienu, tiek dzēstas."
    )
    assert (
        i18n.translate_plural(
            "en", "Messages older than {n} day are deleted.", "Messages older than {n} days are deleted.", 90
        )
        == "Messages older than 90 days are deleted."
    )


def test_the_catalogs_compile(tmp_path: Path) -> None:
    for lang in i18n.LANGUAGES:
        i18n.catalog.cache_clear()
        assert i18n.catalog(lang).gettext("Queue") == {"en": "Queue", "lv": "Rinda", "ru": "Очередь"}[lang]
    script = _script()
    script.CATALOGS = tmp_path
    for lang in i18n.LANGUAGES:  # pybabel compile, as `make translations-compile` runs it
        target = tmp_path / lang / "LC_MESSAGES"
        target.mkdir(parents=True)
        (target / "messages.po").write_bytes((i18n.TRANSLATIONS / lang / "LC_MESSAGES" / "messages.po").read_bytes())
    script.compile_all()
    assert all((tmp_path / lang / "LC_MESSAGES" / "messages.mo").stat().st_size > 0 for lang in i18n.LANGUAGES)


def test_the_chat_page_lists_its_words() -> None:
    """Every text chat.html marks and chat.js translates is in CHAT_WORDS (and so in the catalogs)."""
    html = (STATIC / "chat.html").read_text(encoding="utf-8")
    script = (STATIC / "chat.js").read_text(encoding="utf-8")
    marked = set(re.findall(r"<(\w+)[^>]* data-i18n>([^<]+)<", html))
    texts = {text.strip() for _, text in marked}
    texts |= set(re.findall(r'placeholder="([^"]+)" data-i18n-placeholder', html))
    texts |= set(re.findall(r'aria-label="([^"]+)" data-i18n-aria-label', html))
    texts |= set(re.findall(r'\bt\("([^"]+)"\)', script))
    assert len(texts) >= 12 and texts <= set(CHAT_WORDS), texts - set(CHAT_WORDS)


def test_the_browser_language_is_picked_by_weight() -> None:
    assert browser_language("de-DE,ru;q=0.8,lv;q=0.9") == "lv"
    assert browser_language("ru-RU,ru;q=0.9,en-US;q=0.8") == "ru"
    assert browser_language("de, fr;q=0.5") is None
    assert browser_language("ru;q=0") is None
    assert browser_language("") is None
