"""The console's and the web chat's words: gettext catalogs (``translations/<lang>/LC_MESSAGES/
messages.po``, handled with Babel) keyed by the English text itself.

Python code calls ``translate(lang, "English text", name=value)`` (``translate_plural`` where a
count is shown, ``translate_in`` where one English word needs two translations); templates call
``_("English text", name=value)``, ``ngettext(...)`` and ``pgettext(...)``, bound per render to
the page's language. Placeholders are named, ``{name}``, filled by ``str.format`` after the
lookup. The ``.po`` files are the source: they are compiled in memory the first time a language
is used, so a fresh clone needs no build step (docs/translations.md; a test checks that every
string has every language).
"""

from __future__ import annotations

import functools
import io
from collections.abc import Callable
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations

LANGUAGES = ("en", "lv", "ru")
# each language by its own name, for the pickers
LANGUAGE_NAMES = {"en": "English", "lv": "Latviešu", "ru": "Русский"}
TRANSLATIONS = Path(__file__).resolve().parent / "translations"
DOMAIN = "messages"


def N_(message: str) -> str:
    """Marks ``message`` for extraction where it is translated later (by value, in a mapping)."""
    return message


@functools.cache
def catalog(lang: str) -> Translations:
    """The compiled catalog of ``lang`` (fuzzy entries are left out, as gettext does)."""
    with open(TRANSLATIONS / lang / "LC_MESSAGES" / f"{DOMAIN}.po", "rb") as source:
        messages = read_po(source, locale=lang, domain=DOMAIN)
    compiled = io.BytesIO()
    write_mo(compiled, messages)
    compiled.seek(0)
    return Translations(compiled, domain=DOMAIN)


def _filled(text: str, values: dict[str, object]) -> str:
    return text.format(**values) if values else text


def translate(lang: str, message: str, /, **values: object) -> str:
    return _filled(catalog(pick_language(lang, "en")).gettext(message), values)


def translate_plural(lang: str, singular: str, plural: str, n: int, /, **values: object) -> str:
    """The form of ``n`` in ``lang`` (Latvian and Russian have three); ``{n}`` is filled too."""
    return _filled(catalog(pick_language(lang, "en")).ngettext(singular, plural, n), {"n": n, **values})


def translate_in(lang: str, context: str, message: str, /, **values: object) -> str:
    """``message`` as meant in ``context``: one English word, two translations."""
    return _filled(str(catalog(pick_language(lang, "en")).pgettext(context, message)), values)


def template_words(lang: str) -> dict[str, Callable[..., str]]:
    """What templates call, bound to ``lang``: ``_``/``gettext``, ``ngettext``, ``pgettext``."""
    gettext = functools.partial(translate, lang)
    return {
        "_": gettext,
        "gettext": gettext,
        "ngettext": functools.partial(translate_plural, lang),
        "pgettext": functools.partial(translate_in, lang),
    }


def words_of(lang: str, messages: tuple[str, ...]) -> dict[str, str]:
    """``messages`` translated into ``lang``, as a JSON object for a page's script."""
    return {message: translate(lang, message) for message in messages}


def pick_language(requested: str | None, fallback: str) -> str:
    return requested if requested in LANGUAGES else fallback
