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

import asyncio
import contextlib
import multiprocessing
import os
import re
import threading
import unicodedata
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from markupsafe import Markup, escape

from conversations.children import die_with_parent

MAX_WORDS = 200  # tokens kept per document: a long e-mail body is found by its first words
THREAD_CHARS = 4_096  # a longer text's terms are made in a child process (``search_text_off_loop``)
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
# a leading "00" is digits of the run, so "\+?" finds what "(?:\+|00)?" did, with less backtracking;
# and a code's words are taken whole ("\w++"): giving a letter back never lets "-" or "/" follow
_PHONE = re.compile(r"(?<!\w)\+?\d[\d ().-]{5,}\d(?!\w)")
_CODE = re.compile(r"(?<!\w)\w++(?:[-/]\w++)+")  # from a word's start: a match never starts inside one
_WORD = re.compile(r"\w+")
_DIGIT = re.compile(r"\d")
_COUNTRY_CODES = ("371", "370", "372", "7", "1", "44", "49")  # stripped to find local numbers too
_SEPARATORS = re.compile(r"[\W_]+")
PREFIX_MARK = "pfx"  # a stored prefix term: "pfx" + the token's first characters
PREFIX_MIN = 3  # characters: a shorter last word is matched whole
PREFIX_MAX = 6  # characters: a longer last word is asked for by its first 6, then checked whole


def fold(text: str) -> str:
    """Lower-case ``text`` and drop its combining marks (Latin diacritics; "й"/"ё" fold too)."""
    if text.isascii():  # nothing to decompose, nothing combining
        return text.lower()
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


def _tokens(folded: str) -> Iterator[str]:
    """The tokens of a folded text, lazily: its e-mail addresses, phone numbers, codes, then words
    (each kind found, cut out and deduplicated in one pass of C code, so a long text costs
    milliseconds, not a Python loop over each of its words)."""
    rest = folded
    if "@" in rest:
        rest, emails = _cut(_EMAIL, rest)
        yield from emails
    if _DIGIT.search(rest):
        rest, phones = _cut(_PHONE, rest)
        for phone in phones:
            yield from _phone_tokens(phone)
    yield from dict.fromkeys(_CODE.findall(rest))
    for word in dict.fromkeys(_WORD.findall(rest)):
        yield word.replace("_", "")


def _cut(pattern: re.Pattern[str], text: str) -> tuple[str, Iterable[str]]:
    """``text`` with ``pattern``'s matches replaced by spaces, and the distinct matches in order."""
    found: list[str] = []

    def blank(match: re.Match[str]) -> str:
        found.append(match.group())
        return " "

    return pattern.sub(blank, text), dict.fromkeys(found)


def search_words(text: str) -> list[str]:
    """The distinct tokens of ``text`` in order of first appearance, at most ``MAX_WORDS``."""
    seen: dict[str, None] = {}
    for token in _tokens(fold(text)):
        if token:
            seen.setdefault(token, None)
            if len(seen) == MAX_WORDS:  # what follows would not be kept: not even looked for
                break
    return list(seen)


def term(token: str) -> str:
    """``token`` as a text-index term: letters and digits only ("a-10234" -> "a10234")."""
    return _SEPARATORS.sub("", token)


def search_text(text: str) -> str:
    """What a message is stored with for its text index: the terms of ``text``'s tokens, each
    followed by its marked prefixes (see the module's docstring)."""
    terms: dict[str, None] = {}  # an existing key keeps its place: the first appearance orders
    for token in search_words(text):
        whole = token if token.isalnum() else term(token)  # most tokens are words: no regex
        if not whole:
            continue
        terms[whole] = None
        marked = PREFIX_MARK + whole[:PREFIX_MAX]
        for end in range(len(PREFIX_MARK) + PREFIX_MIN, len(marked) + 1):
            terms[marked[:end]] = None
    return " ".join(terms)


async def search_text_off_loop(text: str) -> str:
    """``search_text(text)``, made in a child process when ``text`` is long: its addresses, phone
    numbers and codes are looked for in all of it, 10-20 ms of Python per 100,000 characters that
    holds the GIL. On a worker thread of the router it did so in slices of 5 ms (the interpreter's
    switch interval), and the event loop, waiting for the GIL at each of its steps, ran every
    other customer's message that much later. The child runs at a lower CPU priority and dies
    with the router. A child that died is replaced (the text tried once more there); where no
    child can be had (no file descriptors or processes left), the terms are made on one thread
    of this process, one text at a time."""
    if len(text) <= THREAD_CHARS:
        return search_text(text)
    loop = asyncio.get_running_loop()
    for _ in range(2):
        pool = _terms_process()
        try:
            return await loop.run_in_executor(pool, _terms_in_child, text)
        except BrokenProcessPool:
            _forget_terms_process(pool)
        except (OSError, RuntimeError):  # the child could not be started, or the pool is shut down
            break
    return await loop.run_in_executor(_FALLBACK_THREAD, search_text, text)


_TERMS_PROCESS: ProcessPoolExecutor | None = None
_TERMS_LOCK = threading.Lock()
_TERMS_NICENESS = 5  # below the router and the store; at 10 a busy machine left it a tenth of a core
_FALLBACK_THREAD = ThreadPoolExecutor(1, thread_name_prefix="search-terms")


def _terms_in_child(text: str) -> str:
    """What the child runs: this module's ``search_text`` there (sent by name, not pickled)."""
    return search_text(text)


def _gentle() -> None:
    """The child's start: a lower priority, and Linux ends it when the router dies (even by
    SIGKILL), so no child is left holding the router's pipes."""
    die_with_parent()
    with contextlib.suppress(OSError):
        os.nice(_TERMS_NICENESS)


def _terms_process() -> ProcessPoolExecutor:
    """The child process long texts' terms are made in, started on first use ("spawn": a fork of
    the router's threads could copy a lock another thread holds)."""
    global _TERMS_PROCESS
    with _TERMS_LOCK:
        if _TERMS_PROCESS is None:
            _TERMS_PROCESS = ProcessPoolExecutor(1, multiprocessing.get_context("spawn"), initializer=_gentle)
        return _TERMS_PROCESS


def terms_process_ids() -> list[int]:
    """The pids of the child making long texts' terms (none before the first long text), for
    counting its CPU beside the router's (``bench/long_messages.py``)."""
    with _TERMS_LOCK:
        pool = _TERMS_PROCESS
    processes = dict(getattr(pool, "_processes", None) or {})  # ProcessPoolExecutor's own (pid: process)
    return [pid for pid in processes if pid]


def _forget_terms_process(pool: ProcessPoolExecutor) -> None:
    global _TERMS_PROCESS
    with _TERMS_LOCK:
        if _TERMS_PROCESS is pool:
            _TERMS_PROCESS = None
    pool.shutdown(wait=False, cancel_futures=True)


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
