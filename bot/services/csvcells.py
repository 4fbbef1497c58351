"""CSV cells a spreadsheet will not run: a cell that begins with ``=``, ``+``, ``-``, ``@``, a tab
or a carriage return is read as a formula by Excel, LibreOffice and Google Sheets (CSV injection,
OWASP), so such text gets a leading apostrophe. Plain numbers (``-3.5``) stay numbers."""

from __future__ import annotations

import re

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")  # and full-width forms
_NUMBER = re.compile(r"-?\d+(\.\d+)?")


def inert_cell(value: object) -> str:
    """``value`` as CSV text that opens as text, never as a formula."""
    text = "" if value is None else str(value)
    if text.startswith(_FORMULA_START) and not _NUMBER.fullmatch(text):
        return "'" + text
    return text
