"""Search words: the normalised tokens a message or contact is found by.

MongoDB's ``$text`` stems no Latvian or Russian, so a stored document carries a ``words`` array of
tokens instead (a multikey index serves ``$all`` on a query's tokens). A token is:

* a word, lower-cased with diacritics folded ("Bērziņa" -> "berzina"; Cyrillic kept, "ё" -> "е");
* a whole e-mail address, lower-cased ("Anna@Example.LV");
* an order-number-like code, a run of letters and digits joined by "-" or "/" ("A-10234" ->
  "a-10234"), kept whole and also split into its parts;
* the digits of a phone number, spaces, dashes, dots and brackets dropped and a leading "+" or "00"
  with them ("+371 2000 0000" -> "37120000000", also "20000000" without the country code).

The same function tokenises the query, so what the store holds and what is asked match.
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


def words_filter(query: str, field: str = "words") -> dict[str, Any] | None:
    """The MongoDB filter on ``field`` that finds the query's tokens, the last one as a prefix (the
    user may still be typing); None for a query without tokens. ``$elemMatch`` with an anchored
    ``$regex`` (not a bare ``$regex`` on the array field, which nx-27017 does not apply to array
    elements) is documented MongoDB and matches the same there."""
    tokens = search_words(query)
    if not tokens:
        return None
    *whole, last = tokens
    clauses: list[dict[str, Any]] = [{field: {"$elemMatch": {"$regex": "^" + re.escape(last)}}}]
    if whole:
        clauses.insert(0, {field: {"$all": whole}})
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}


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
