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
