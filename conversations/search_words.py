"""Search words: the normalised tokens a message is found by, and the text-index terms they are
stored and asked for as.

MongoDB's ``$text`` stems no Latvian or Russian, so we fold the words ourselves and hand the text
index (``default_language: "none"``: no stemming, no stop words) the folded tokens. A token is:

* a word, lower-cased with diacritics folded ("Bērziņa" -> "berzina"; Cyrillic kept, "ё" -> "е");
* a whole e-mail address, lower-cased ("Anna@Example.LV");
* an order-number-like code, a run of letters and digits joined by "-" or "/" ("A-10234" ->
  "a-10234"), kept whole and also split into its parts;
* the digits of a phone number, spaces, dashes, dots and brackets dropped and a leading "+" or "00"
  with them ("+371 2000 0000" -> "37120000000", also "20000000" without the country code).

The same function tokenises the query, so what the store holds and what is asked match.

A stored message carries a ``search_text`` field (made by ``search_text()``): its tokens as *terms*
that every text index keeps whole, MongoDB's tokenizer and SQLite FTS5's (which the embedded store
runs ``$text`` on) alike: a token's separators ("-", "/", "@", ".", "+") are dropped ("a-10234" ->
"a10234", "anna@example.lv" -> "annaexamplelv"). The last word of a search is a prefix (the agent
may still be typing), and ``$text`` matches whole terms only, so every token of ``PREFIX_MIN`` or
more characters is also stored as its first ``PREFIX_MIN``..``PREFIX_MAX`` characters, marked with
``PREFIX_MARK`` ("order" also as "pfxord", "pfxorde", "pfxorder") so that a prefix never passes for
a whole word. An order number or an address being typed is a prefix as a whole ("a-102").
``text_filter`` asks for every term as a quoted phrase: MongoDB and the embedded store both match
only documents holding every phrase (unquoted terms would be ORed on MongoDB).
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from markupsafe import Markup, escape

MAX_WORDS = 200  # tokens kept per document: a long e-mail body is found by its first words
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_PHONE = re.compile(r"(?<![\w])(?:\+|00)?\d[\d ().-]{5,}\d(?![\w])")
_CODE = re.compile(r"\w+(?:[-/]\w+)+")
_WORD = re.compile(r"\w+")
_COUNTRY_CODES = ("371", "370", "372", "7", "1", "44", "49")  # stripped to find local numbers too
_SEPARATORS = re.compile(r"[\W_]+")
PREFIX_MARK = "pfx"  # a stored prefix term: "pfx" + the token's first characters
PREFIX_MIN = 3  # characters: a shorter last word is matched whole
PREFIX_MAX = 6  # characters: a longer last word is asked for by its first 6, then checked whole


def fold(text: str) -> str:
    """Lower-case ``text`` and drop its combining marks (Latin diacritics; "й"/"ё" fold too)."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def _phone_tokens(raw: str) -> list[str]:
    digits = re.sub(r"\D", "", raw)
    if raw.startswith("00"):
        digits = digits[2:]
    if len(digits) < 7:
        return []
    tokens = [digits]
    if raw.startswith(("+", "00")):
        for code in _COUNTRY_CODES:
            if digits.startswith(code) and len(digits) - len(code) >= 7:
                tokens.append(digits[len(code) :])
                break
    return tokens


def search_words(text: str) -> list[str]:
    """The distinct tokens of ``text`` in order of first appearance, at most ``MAX_WORDS``."""
    folded = fold(text)
    seen: dict[str, None] = {}

    def keep(token: str) -> None:
        if token and len(seen) < MAX_WORDS:
            seen.setdefault(token, None)

    for match in _EMAIL.finditer(folded):
        keep(match.group())
    rest = _EMAIL.sub(" ", folded)
    for match in _PHONE.finditer(rest):
        for token in _phone_tokens(match.group()):
            keep(token)
    rest = _PHONE.sub(" ", rest)
    for match in _CODE.finditer(rest):
        keep(match.group())
    for match in _WORD.finditer(rest):
        keep(match.group().replace("_", ""))
    return list(seen)


def term(token: str) -> str:
    """``token`` as a text-index term: letters and digits only ("a-10234" -> "a10234")."""
    return _SEPARATORS.sub("", token)


def search_text(text: str) -> str:
    """What a message is stored with for its text index: the terms of ``text``'s tokens, each
    followed by its marked prefixes (see the module's docstring)."""
    terms: dict[str, None] = {}
    for token in search_words(text):
        whole = term(token)
        if whole:
            terms.setdefault(whole, None)
        for size in range(PREFIX_MIN, min(len(whole), PREFIX_MAX) + 1):
            terms.setdefault(PREFIX_MARK + whole[:size], None)
    return " ".join(terms)


def text_filter(query: str, field: str = "search_text") -> dict[str, Any] | None:
    """The MongoDB filter that finds documents whose ``search_text`` holds every token of ``query``,
    the last one as a prefix; None for a query without tokens. The text index serves it: every
    term is a quoted phrase (all must match). A last word longer than ``PREFIX_MAX`` is asked for by
    its stored prefix and checked whole with an anchored ``$regex`` among the index's hits; a last
    word shorter than ``PREFIX_MIN`` is checked that way too, or matched whole if it is alone."""
    tokens = search_words(query)
    if not tokens:
        return None
    *before, last_word = query.split()
    typing = search_words(last_word)
    if typing and typing[0] != term(typing[0]):  # an order number or an address: a prefix whole
        tokens = [*search_words(" ".join(before)), typing[0]]
    *whole, last = [term(token) for token in tokens]
    phrases = list(dict.fromkeys(t for t in whole if t))
    starts_with: str | None = None
    if len(last) >= PREFIX_MIN:
        phrases.append(PREFIX_MARK + last[:PREFIX_MAX])
        starts_with = last if len(last) > PREFIX_MAX else None
    elif phrases:
        starts_with = last
    else:
        phrases.append(last)
    found: dict[str, Any] = {"$text": {"$search": " ".join(f'"{p}"' for p in phrases)}}
    if starts_with is not None:
        found[field] = {"$regex": "(?:^| )" + re.escape(starts_with)}
    return found


def highlight(text: str, query: str) -> Markup:
    """``text`` HTML-escaped with every word that matches one of the query's tokens (folded, the
    last one as a prefix), and every phone number found by its digits, wrapped in ``<mark>``:
    built from escaped pieces, never from raw text."""
    tokens = search_words(query)
    if not tokens:
        return escape(text)
    *whole, last = tokens

    def matches(token: str) -> bool:
        return token in whole or token.startswith(last)

    spans = [m.span() for m in _PHONE.finditer(text) if any(matches(t) for t in _phone_tokens(m.group()))]
    for match in re.finditer(r"[\w.+@-]+", text):
        inside = any(start <= match.start() < end for start, end in spans)
        folded = fold(match.group()).strip(".-")
        if not inside and (matches(folded) or any(matches(t) for t in search_words(match.group()))):
            spans.append(match.span())
    pieces: list[str] = []
    position = 0
    for start, end in sorted(spans):
        pieces.append(str(escape(text[position:start])))
        pieces.append(f"<mark>{escape(text[start:end])}</mark>")
        position = end
    pieces.append(str(escape(text[position:])))
    return Markup("".join(pieces))
