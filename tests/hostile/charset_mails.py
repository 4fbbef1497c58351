"""Mails mixing charsets the way real mail programs label them: the subject, the sender's name and
each part in another charset, often a subset's label over a superset's bytes (GBK text labelled
``gb2312``, cp1252 labelled ``iso-8859-1``, cp949 labelled ``ks_c_5601-1987``), in 8bit, base64 or
quoted-printable, raw 8-bit headers (RFC 6532), and now and then a stray bad byte in UTF-8 text.

Each case knows what its sender wrote, so a property test and the fuzzing run (``bench/fuzz.py``)
check that it reads back exactly (a bad byte as one U+FFFD), not only that parsing does not fail.
"""

from __future__ import annotations

import base64
import quopri
from dataclasses import dataclass

from hypothesis import strategies as st

from bot.handlers.email.parse import parse_mail

SENTENCES = (
    "Где мой заказ 1042? Спасибо!",
    "Kur ir mans pasūtījums? Paldies, Jānis",
    "Wo ist meine Bestellung? Grüße – Jürgen, 20 €",
    "Où est ma commande ? Merci « beaucoup »",
    "朱镕基先生的订单还没有到。",
    "똠방각하 주문 확인 부탁드립니다",
    "注文した商品がまだ届きません。",
    "Order 1042, please",
)
# (the label a mail program writes, the codec that really wrote the bytes)
LABELS = (
    ("utf-8", "utf-8"),
    ("gb2312", "gbk"),
    ("GBK", "gbk"),
    ("ks_c_5601-1987", "cp949"),
    ("iso-8859-1", "cp1252"),
    ("windows-1252", "cp1252"),
    ("koi8-r", "koi8-r"),
    ("windows-1251", "cp1251"),
    ("iso-8859-13", "iso-8859-13"),
    ("shift_jis", "cp932"),
    ("iso-2022-jp", "iso2022_jp"),
    ("big5", "big5"),
)


@dataclass(frozen=True)
class CharsetMix:
    raw: bytes
    subject: str
    sender_name: str
    body: str  # the body part as its sender wrote it (a bad byte as U+FFFD)


def _encodable(text: str, codec: str) -> bool:
    try:
        text.encode(codec)
    except UnicodeEncodeError:
        return False
    return True


@st.composite
def _labelled(draw: st.DrawFn) -> tuple[str, str, str]:
    """(label, codec, a sentence that codec can write)."""
    label, codec = draw(st.sampled_from(LABELS))
    return label, codec, draw(st.sampled_from([s for s in SENTENCES if _encodable(s, codec)]))


@st.composite
def _header(draw: st.DrawFn, quoted: bool = False) -> tuple[bytes, str]:
    """A header value as bytes (an encoded word, or raw UTF-8 as RFC 6532 allows; ``quoted``: as
    a display name, whose commas must be quoted) and its text."""
    label, codec, text = draw(_labelled())
    if draw(st.booleans()):
        return (b'"%s"' if quoted else b"%s") % text.encode("utf-8"), text
    return b"=?%s?B?%s?=" % (label.encode(), base64.b64encode(text.encode(codec))), text


@st.composite
def _part(draw: st.DrawFn, subtype: str, bad_byte: bool) -> tuple[bytes, str]:
    label, codec, text = draw(_labelled())
    if bad_byte:
        label, codec = "utf-8", "utf-8"
        at = draw(st.integers(0, len(text)))
        data, text = text[:at].encode() + b"\xff" + text[at:].encode(), text[:at] + "\ufffd" + text[at:]
    else:
        data = text.encode(codec)
    content = data if subtype == "plain" else b"<p>" + data + b"</p>"
    encoding = draw(st.sampled_from(["8bit", "base64", "quoted-printable"]))
    if encoding == "base64":
        content = base64.encodebytes(content)
    elif encoding == "quoted-printable":
        content = quopri.encodestring(content)
    head = b"Content-Type: text/%s; charset=%s\r\nContent-Transfer-Encoding: %s\r\n" % (
        subtype.encode(),
        label.encode(),
        encoding.encode(),
    )
    return head + b"\r\n" + content.rstrip(b"\n").replace(b"\n", b"\r\n") + b"\r\n", text


@st.composite
def charset_mixes(draw: st.DrawFn) -> CharsetMix:
    """One mail whose subject, sender name and parts each use another charset (module doc)."""
    subject, subject_text = draw(_header())
    name, name_text = draw(_header(quoted=True))
    plain, body = draw(_part("plain", draw(st.integers(0, 3)) == 0))
    shape = draw(st.sampled_from(["single", "alternative", "mixed"]))
    if shape == "single":
        content = plain
    else:
        other, _ = draw(_part("html" if shape == "alternative" else "plain", False))
        if shape == "mixed":
            other = b'Content-Disposition: attachment; filename="note.txt"\r\n' + other
        content = b'Content-Type: multipart/%s; boundary="mix"\r\n\r\n--mix\r\n%s--mix\r\n%s--mix--\r\n' % (
            shape.encode(),
            plain,
            other,
        )
    head = (
        b"From: " + name + b" <customer@client.example>\r\nTo: support@shop.example\r\n"
        b"Subject: " + subject + b"\r\nMessage-ID: <mix@client.example>\r\nMIME-Version: 1.0\r\n"
    )
    return CharsetMix(head + content, subject_text, name_text, body)


def assert_reads_back(mix: CharsetMix) -> None:
    """``mix`` parsed reads as its sender wrote it: subject, sender's name and body."""
    mail = parse_mail(mix.raw)
    assert (mail.subject, mail.sender_name, mail.full_text) == (mix.subject, mix.sender_name, mix.body)
