"""Turning the bytes of one mail part or header into text, as mail programs really write them.

A part is decoded on its own with the charset it declares, read as the superset that mail
programs really use under that name (``gb2312`` text is written by GBK encoders, ``iso-8859-1`` by
Windows' cp1252, ``ks_c_5601`` by cp949, ...); bytes that are still invalid become U+FFFD one by
one, so one bad byte never turns the rest of the part into mojibake. Text that declares no charset,
or one Python does not know, and 8-bit header bytes (RFC 6532 UTF-8, or a sender that never
encoded them) are read as UTF-8, then as cp1252.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterable

# what mail programs write under a declared name (keys: Python's canonical codec names)
SUPERSETS = {
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "euc_kr": "cp949",  # ks_c_5601-1987 is an alias of euc_kr in Python
    "shift_jis": "cp932",
    "euc_jp": "euc_jis_2004",
    "iso2022_jp": "iso2022_jp_2",
    "big5": "big5hkscs",
    "iso8859-9": "cp1254",
    "iso8859-11": "cp874",
    "tis-620": "cp874",
    "iso8859-1": "cp1252",
    "latin-1": "cp1252",
    "ascii": "cp1252",
}
# declared names that 8-bit UTF-8 text hides behind most often: UTF-8 is tried first
_ASCII_OR_LATIN = frozenset({"ascii", "iso8859-1", "latin-1", "cp1252"})
_FALLBACKS = ("utf-8", "cp1252")
_ENCODED_WORD_CHARSET = re.compile(r"=\?([^?*\s]+)((?:\*[^?\s]*)?\?[bBqQ]\?)")


def decode_text(data: bytes, declared: str | None) -> str:
    """``data`` as text: see the module doc. Never raises."""
    candidates = list(_candidates(declared))
    for codec in candidates:
        try:
            return data.decode(codec)
        except (UnicodeDecodeError, LookupError):  # LookupError: a name of no text codec (rot13)
            continue
    try:
        return data.decode(candidates[0], errors="replace")  # only the bad bytes are replaced
    except LookupError:
        return data.decode("utf-8", errors="replace")


def decode_8bit(data: bytes) -> str:
    """Undeclared 8-bit bytes (a header, a subject): UTF-8, else cp1252."""
    return decode_text(data, None)


def encoded_words_as_supersets(value: str) -> str:
    """A header's RFC 2047 encoded words relabelled with the superset of their charset
    (``=?gb2312?B?...?=`` read as gb18030), since the ``email`` package decodes them itself."""
    return _ENCODED_WORD_CHARSET.sub(_relabel, value) if "=?" in value else value


def _relabel(found: re.Match[str]) -> str:
    name = _canonical(found.group(1))
    superset = SUPERSETS.get(name, found.group(1)) if name else found.group(1)
    return f"=?{superset}{found.group(2)}"


def _candidates(declared: str | None) -> Iterable[str]:
    name = _canonical(declared) if declared else None
    if name is None:
        return _FALLBACKS
    if name == "utf-8":
        return ("utf-8",)  # a bad byte in UTF-8 text is a bad byte, not a sign of cp1252
    if name in _ASCII_OR_LATIN:
        return ("utf-8", SUPERSETS.get(name, name))
    return (SUPERSETS.get(name, name),)


def _canonical(declared: str) -> str | None:
    cleaned = declared.strip().strip("\"'").lower()
    if cleaned in ("utf8", "utf-8", "unicode-1-1-utf-8"):
        return "utf-8"
    try:
        return codecs.lookup(cleaned).name
    except (LookupError, ValueError):
        return None
