"""Hypothesis strategies for hostile provider traffic, channel by channel.

Each channel's bodies come three ways: a recorded provider payload with a few of its values
replaced, removed or added (the payload a slightly different provider version, or an attacker who
knows the format, would send), arbitrary JSON or form data, and arbitrary bytes. Text draws from
all of Unicode, lone surrogates included; numbers include ones no store can hold.

Used by the property tests (``tests/hostile/test_properties.py``) and by the fuzzing run
(``bench/fuzz.py``), which draws 100,000 cases per channel parser from the same strategies.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from email.utils import format_datetime
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from conversations.models import utcnow

HANDLERS = Path(__file__).resolve().parent.parent / "handlers"  # each channel's fixtures/


def _fixtures(channel: str, suffix: str = ".json") -> list[Any]:
    files = sorted((HANDLERS / channel / "fixtures").glob(f"*{suffix}"))
    return [json.loads(f.read_text()) if suffix == ".json" else f.read_bytes() for f in files]


# --- values ---------------------------------------------------------------------------------------

# any Unicode code point, unpaired surrogates and NUL included
texts = st.text(st.characters(codec=None, min_codepoint=0, max_codepoint=0x10FFFF), max_size=40)
short_texts = st.one_of(
    st.sampled_from(
        [
            "",
            " ",
            "0",
            "-1",
            "1e400",
            "null",
            "STOP",
            "text",
            "private",
            "whatsapp_business_account",
            "messages",
            "image",
            "sent",
            "received",
        ]
    ),
    texts,
)
integers = st.one_of(st.integers(-(2**31), 2**31), st.sampled_from([0, -1, 2**53, 2**63, -(2**63) - 1, 2**70, 10**30]))
scalars = st.one_of(st.none(), st.booleans(), integers, st.floats(allow_nan=True, allow_infinity=True), short_texts)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(short_texts, inner, max_size=4)),
    max_leaves=12,
)


LONG_SIZES = (1_000, 2_000, 4_096, 12_600, 50_000)  # the long messages, and round sizes


@st.composite
def long_texts(draw: st.DrawFn) -> str:
    """Thousands of characters, the NLU engine's costliest inputs: one unit (punctuation, a word,
    Cyrillic, emoji, zero-width or arbitrary characters) repeated, or a mix of such runs."""
    units = st.one_of(
        st.sampled_from(["!?.,;:", "where is my order ", "где мой заказ? ", "🙂", "a", "\u200b", "\n", "ー"]),
        st.text(st.characters(codec=None, min_codepoint=0, max_codepoint=0x10FFFF), min_size=1, max_size=8),
    )
    runs = draw(st.lists(st.tuples(units, st.sampled_from(LONG_SIZES)), min_size=1, max_size=3))
    return "".join((unit * (size // len(unit) + 1))[:size] for unit, size in runs)


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a value inside ``doc`` (dict keys and list indexes)."""
    found = [prefix] if prefix else []
    if isinstance(doc, dict):
        for key, value in doc.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(doc, list):
        for index, value in enumerate(doc):
            found += _paths(value, (*prefix, index))
    return found


def _apply(doc: Any, path: tuple[Any, ...], op: str, value: Any) -> None:
    parent = doc
    for step in path[:-1]:
        parent = parent[step]
    last = path[-1]
    if op == "delete":
        del parent[last]
    elif op == "add" and isinstance(parent[last], dict):
        parent[last][str(value)[:20] if not isinstance(value, str) else value] = value
    elif op == "add" and isinstance(parent[last], list):
        parent[last].append(value)
    else:
        parent[last] = value


@st.composite
def mutated(draw: st.DrawFn, originals: list[Any]) -> Any:
    """A recorded payload with up to four of its values replaced, deleted or added to."""
    doc = copy.deepcopy(draw(st.sampled_from(originals)))
    for _ in range(draw(st.integers(0, 4))):
        paths = _paths(doc)
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        value = draw(st.one_of(json_values, json_values, json_values, long_texts()))
        _apply(doc, path, draw(st.sampled_from(["replace", "replace", "delete", "add"])), value)
    return doc


def json_bodies(originals: list[Any]) -> st.SearchStrategy[bytes]:
    """JSON bodies: mostly mutated recordings, some arbitrary JSON, some arbitrary bytes."""
    as_json = st.one_of(mutated(originals), mutated(originals), mutated(originals), json_values)
    encoded = as_json.map(lambda doc: json.dumps(doc, ensure_ascii=True).encode())
    return st.one_of(encoded, encoded, encoded, encoded, st.binary(max_size=200))


# --- channels -------------------------------------------------------------------------------------


def telegram_bodies() -> st.SearchStrategy[bytes]:
    return json_bodies(_fixtures("telegram"))


def whatsapp_bodies() -> st.SearchStrategy[bytes]:
    return json_bodies(_fixtures("whatsapp"))


def webchat_bodies(visitor_token: str) -> st.SearchStrategy[bytes]:
    originals = [
        {"id": "m-1", "text": "where is my order?"},
        {"id": "m.2:x", "text": "hi", "name": "Ann"},
        {"id": "m3", "text": "again", "visitor_token": visitor_token},
    ]
    return json_bodies(originals)


@st.composite
def twilio_forms(draw: st.DrawFn, originals: list[dict[str, str]]) -> dict[str, str]:
    """Form fields of a recorded Twilio webhook with some changed, removed or added."""
    form = dict(draw(st.sampled_from(originals)))
    names = st.one_of(
        st.sampled_from(
            sorted(
                {k for o in originals for k in o}
                | {
                    "NumMedia",
                    "MediaUrl0",
                    "MediaContentType0",
                    "MediaUrl1",
                    "OptOutType",
                    "DialCallStatus",
                    "DialCallDuration",
                    "MessageStatus",
                    "ErrorCode",
                }
            )
        ),
        texts,
    )
    for _ in range(draw(st.integers(0, 4))):
        name = draw(names)
        if draw(st.booleans()) and name in form:
            del form[name]
        else:
            form[name] = draw(st.one_of(short_texts, short_texts, st.integers(-5, 2**40).map(str), long_texts()))
    return form


def sms_forms() -> st.SearchStrategy[dict[str, str]]:
    return twilio_forms(_fixtures("sms"))


def voice_forms() -> st.SearchStrategy[dict[str, str]]:
    return twilio_forms(_fixtures("voice"))


_HEADER_VALUES = st.one_of(
    texts,
    st.sampled_from(
        [
            "=?utf-8?b?w7zDpMO2?=",
            "=?bogus?q?x?=",
            "<a@b>",
            "<>",
            "auto-replied",
            "bulk",
            "\u00e9\u00e8 <x@y.z>",
            "undisclosed-recipients:;",
            '"a@b" <c@d>',
            "a" * 300,
            "<" * 50,
            "@",
            "Mon, 99 Foo 2024 99:99:99 +9999",
        ]
    ),
)


_KINDS = st.sampled_from(
    [
        "text/plain",
        "text/html",
        "application/pdf",
        "message/rfc822",
        "image/png",
        "text/plain; charset=x-unknown",
        "multipart/alternative",
        "text/html; charset=utf-16",
    ]
)


@st.composite
def mails(draw: st.DrawFn) -> bytes:
    """A raw mail: a recorded one with headers replaced, or one built from hostile parts."""
    if draw(st.integers(0, 3)) == 0:
        return draw(st.sampled_from(_fixtures("email", ".eml")))
    headers = {
        "From": draw(st.one_of(st.just("Ann <ann@example.net>"), _HEADER_VALUES)),
        "To": "support@shop.example",
        "Subject": draw(_HEADER_VALUES),
        "Message-ID": draw(st.one_of(st.just(f"<{draw(st.uuids())}@example.net>"), _HEADER_VALUES)),
        "Date": format_datetime(utcnow()),
    }
    for name in draw(
        st.lists(
            st.sampled_from(
                [
                    "In-Reply-To",
                    "References",
                    "Auto-Submitted",
                    "List-Id",
                    "Precedence",
                    "Reply-To",
                    "Content-Transfer-Encoding",
                    "Cc",
                ]
            ),
            max_size=4,
        )
    ):
        headers[name] = draw(_HEADER_VALUES)
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items()).encode("utf-8", "surrogatepass")
    body = draw(
        st.one_of(
            st.binary(max_size=300),
            texts.map(lambda t: t.encode("utf-8", "surrogatepass")),
            long_texts().map(lambda t: t.encode("utf-8", "surrogatepass")),
        )
    )
    part = b"Content-Type: %s\r\n\r\n%s" % (draw(_KINDS).encode(), body)
    for level in range(draw(st.integers(0, 3))):  # nested multiparts, each with a hostile attachment
        name = draw(texts).encode("utf-8", "surrogatepass")
        part = (
            b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n%s\r\n--b%d\r\n"
            b'Content-Type: %s\r\nContent-Disposition: attachment; filename="%s"\r\n\r\n%s\r\n--b%d--\r\n'
            % (level, level, part, level, draw(_KINDS).encode(), name, draw(st.binary(max_size=40)), level)
        )
    return head + b"MIME-Version: 1.0\r\n" + part


CHANNEL_BODIES: dict[str, Callable[[], st.SearchStrategy[Any]]] = {
    "telegram": telegram_bodies,
    "whatsapp": whatsapp_bodies,
    "sms": sms_forms,
    "voice": voice_forms,
    "email": mails,
}
