"""How a text travels as SMS: GSM-7 or UCS-2, how many segments, and where to split it.

A single SMS carries 160 GSM-7 characters or 70 UCS-2 code units; a longer text is sent as a
concatenated message whose segments carry 153 or 67 (the rest is the concatenation header). The
GSM-7 extension characters (``^{}\\[~]|€`` and form feed) take two septets and are never split
from their escape; a UTF-16 surrogate pair (an emoji) is never split either. One character
outside GSM-7 makes the whole message UCS-2.

Providers accept a bounded body (Twilio: 1,600 characters) and carriers charge per segment, so
the adapter splits a long reply into parts of at most ``max_segments`` segments each, at
whitespace where it can.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENDED = frozenset("^{}\\[~]|€\f")

SINGLE = {"GSM-7": 160, "UCS-2": 70}  # units in a message of one segment
CONCATENATED = {"GSM-7": 153, "UCS-2": 67}  # units per segment of a longer message
_TOKEN = re.compile(r"\S+\s*|\s+")


@dataclass(frozen=True)
class SmsShape:
    """How one text is sent: its encoding, length in encoding units, and segment count."""

    encoding: str
    units: int
    segments: int


def encoding_of(text: str) -> str:
    return "GSM-7" if all(c in GSM7_BASIC or c in GSM7_EXTENDED for c in text) else "UCS-2"


def _unit_sizes(text: str, encoding: str) -> list[int]:
    """Each character's size in the encoding's units (septets or UTF-16 code units)."""
    if encoding == "GSM-7":
        return [2 if c in GSM7_EXTENDED else 1 for c in text]
    return [2 if ord(c) > 0xFFFF else 1 for c in text]


def _count_segments(sizes: list[int], encoding: str) -> int:
    total = sum(sizes)
    if total <= SINGLE[encoding]:
        return 1
    per, segments, used = CONCATENATED[encoding], 1, 0
    for size in sizes:  # a character never straddles two segments
        if used + size > per:
            segments, used = segments + 1, 0
        used += size
    return segments


def shape(text: str) -> SmsShape:
    encoding = encoding_of(text)
    sizes = _unit_sizes(text, encoding)
    return SmsShape(encoding, sum(sizes), _count_segments(sizes, encoding) if text else 0)


def split_for_sms(text: str, max_segments: int) -> list[str]:
    """``text`` as parts of at most ``max_segments`` segments each, split at whitespace where a
    word fits, inside a word only where it does not. Empty text gives no parts."""
    if max_segments < 1:
        raise ValueError("max_segments must be at least 1")
    text = text.strip()
    if not text:
        return []
    if shape(text).segments <= max_segments:
        return [text]
    parts: list[str] = []
    current = ""
    for token in _TOKEN.findall(text):
        candidate = current + token
        if shape(candidate.rstrip()).segments <= max_segments:
            current = candidate
            continue
        if current.strip():
            parts.append(current.rstrip())
        current = token.lstrip()
        while shape(current.rstrip()).segments > max_segments:  # one word longer than a part
            cut = _longest_fitting_prefix(current, max_segments)
            parts.append(current[:cut])
            current = current[cut:]
    if current.strip():
        parts.append(current.rstrip())
    return parts


def _longest_fitting_prefix(word: str, max_segments: int) -> int:
    low, high = 1, len(word)
    while low < high:  # binary search on the prefix length that still fits
        middle = (low + high + 1) // 2
        if shape(word[:middle]).segments <= max_segments:
            low = middle
        else:
            high = middle - 1
    return low
