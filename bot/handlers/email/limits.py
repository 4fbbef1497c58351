"""Bounds on the work one inbound mail may cost, checked before the ``email`` package reads it.

A mail of a few megabytes can cost minutes of CPU: the standard library's structured header
parsing grows faster than linearly with a header's length (100,000 addresses in one ``To:`` took
47 s), and every MIME part is an object (20,000 tiny parts took 4 s). Parsing runs in a worker
thread, but it holds the interpreter lock, so one such mail would stall every webhook. Real mail
stays far inside these bounds: a header is cut at ``MAX_HEADER_BYTES`` (at a separator, keeping
what comes first), and a mail with more than ``MAX_PARTS`` parts is refused as malformed (over
SMTP with a 5xx, over IMAP it stays unread for a human).
"""

from __future__ import annotations

import itertools
import re

from bot.handlers.kit.protocol import MalformedPayload

MAX_HEADER_BYTES = 32 * 1024  # one header, folded lines included
MAX_HEADERS = 500
MAX_PARTS = 1000
REPLY_SCAN_CHARS = 64 * 1024  # the quoted-reply stripper looks at the start of the body only

_HEADER_END = re.compile(rb"\r?\n\r?\n")
_PART_HEADER = re.compile(rb"^content-type[ \t]*:", re.IGNORECASE | re.MULTILINE)


def bounded_mail(raw: bytes) -> bytes:
    """``raw`` with oversized headers cut down; ``MalformedPayload`` for too many MIME parts."""
    if len(list(itertools.islice(_PART_HEADER.finditer(raw), MAX_PARTS + 2))) > MAX_PARTS + 1:
        raise MalformedPayload(f"the mail has more than {MAX_PARTS} MIME parts")
    end = _HEADER_END.search(raw)
    head, rest = (raw[: end.start()], raw[end.start() :]) if end else (raw, b"")
    if len(head) <= MAX_HEADER_BYTES:
        return raw
    return _bounded_head(head) + rest


def _bounded_head(head: bytes) -> bytes:
    headers: list[bytes] = []
    for line in head.splitlines(keepends=True):
        if line[:1] in (b" ", b"\t") and headers:
            headers[-1] += line  # a folded continuation of the previous header
        else:
            headers.append(line)
    kept = [_cut(h) for h in headers[:MAX_HEADERS]]
    return b"".join(h if h.endswith(b"\n") else h + b"\r\n" for h in kept).rstrip(b"\r\n")


def _cut(header: bytes) -> bytes:
    if len(header) <= MAX_HEADER_BYTES:
        return header
    cut = header[:MAX_HEADER_BYTES]
    at = max(cut.rfind(b","), cut.rfind(b" "), cut.rfind(b">"))
    return (cut[: at + 1] if at > 0 else cut).rstrip(b", \t\r\n") + b"\r\n"
