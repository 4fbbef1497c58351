"""Reading recorded mails: charsets, multipart, attachments, HTML, quoted replies, loop safety."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.handlers.email.compose import reply_subject, text_to_html, tokens_in
from bot.handlers.email.loops import REASONS
from bot.handlers.email.parse import parse_mail, to_inbound
from bot.handlers.kit.protocol import MalformedPayload
from bot.web.codes import WORDS

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def parsed(name: str, recipients: tuple[str, ...] = ()):  # type: ignore[no-untyped-def]
    return parse_mail((FIXTURES / f"{name}.eml").read_bytes(), recipients)


def test_a_gmail_reply_shows_what_was_written_and_keeps_the_rest() -> None:
    mail = parsed("gmail_reply")
    assert mail.text == "Thanks, the parcel arrived today — but the box was damaged.\nCan I return the mug?\n\nAnna"
    assert "> Where is my order 1042?" in mail.full_text and "wrote:" in mail.full_text
    assert mail.sender == "anna.berzina@gmail.com" and mail.sender_name == "Anna Bērziņa"
    assert mail.message_id == "CAF7qzR2x9LmA0eQ@mail.gmail.com"
    assert mail.in_reply_to == "omnirouter.msg_0123456789abcdef01234567@shop.example"
    assert mail.references == ("CAF7qzR0wq1T3@mail.gmail.com", "omnirouter.msg_0123456789abcdef01234567@shop.example")
    assert mail.no_auto_reply is None and not mail.was_html and mail.attachments == ()


def test_an_outlook_reply_loses_the_original_message_block() -> None:
    mail = parsed("outlook_reply")
    assert mail.text == "Please send the invoice to accounts@corp.example instead.\n\nKind regards,\nPeter"
    assert "-----Original Message-----" in mail.full_text


def test_html_only_mail_becomes_text_without_markup_or_scripts() -> None:
    mail = parsed("html_only_latin1")
    assert mail.was_html
    assert "ich möchte meine Bestellung 1043 stornieren." in mail.text and "Jens Müller" in mail.text
    assert "Tasse" in mail.text and "2" in mail.text
    for markup in ("<", "alert", "color: red", "steal", "pixel.gif"):
        assert markup not in mail.text


def test_multipart_with_attachments_and_encoded_headers() -> None:
    mail = parsed("multipart_attachments")
    assert mail.subject == "Счёт и фото" and mail.sender_name == "Иван Петров"
    assert mail.text == "Добрый день! Счёт и фото повреждённой коробки во вложении."
    assert [(a.kind, a.name, a.mime_type, a.size) for a in mail.attachments] == [
        ("document", "invoice-1042.pdf", "application/pdf", 45),
        ("image", "box.png", "image/png", 70),
    ]
    assert mail.attachments[1].provider_ref == "photo1@mail.example"
    assert mail.recipients == ("support@shop.example", "olga@mail.example")


def test_charsets_declared_and_unknown() -> None:
    koi8 = parsed("koi8r_plain")
    assert koi8.text == "Когда придёт посылка?" and koi8.subject == "Вопрос о посылке"
    assert koi8.sender_name == "Сергей"
    assert parsed("unknown_charset").text == "café order please"  # undeclared charset: UTF-8 guessed


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("auto_reply", "auto_submitted"),
        ("bounce_dsn", "bounce"),
        ("bounce_no_auto_submitted", "bounce"),
        ("mailing_list", "mailing_list"),
        ("precedence_bulk", "bulk"),
        ("auto_submitted_no", None),
        ("gmail_reply", None),
    ],
)
def test_loop_safety_reasons(name: str, reason: str | None) -> None:
    mail = parsed(name)
    assert mail.no_auto_reply == reason
    inbound = to_inbound(mail, "default")
    assert inbound.meta.get("no_auto_reply") == reason


def test_a_mail_without_message_id_gets_a_stable_one_and_one_without_sender_is_refused() -> None:
    first, second = parsed("no_message_id"), parsed("no_message_id")
    assert first.message_id == second.message_id and first.message_id.endswith("@no-message-id.invalid")
    with pytest.raises(MalformedPayload, match="no From address"):
        parsed("no_from")
    with pytest.raises(MalformedPayload):
        parse_mail(b"")


def test_thread_tokens_in_plus_addresses_and_subjects() -> None:
    mail = parsed("plus_address_new_subject", ("support+abcd2345@shop.example",))
    assert tokens_in(mail.subject, mail.recipients, "support@shop.example") == ["abcd2345"]
    assert tokens_in("Re: Where is my order? [#abcd2345]", [], "support@shop.example") == ["abcd2345"]
    assert (
        tokens_in("x", ["sales+abcd2345@shop.example", "support+abcd2345@other.example"], "support@shop.example") == []
    )
    assert reply_subject("RE: AW: Order [#abcd2345]", "abcd2345") == "Re: Order [#abcd2345]"
    assert reply_subject("", "abcd2345") == "Re: Your message [#abcd2345]"


def test_our_html_alternative_escapes_everything() -> None:
    html = text_to_html("<script>alert(1)</script>\nline two\n\nnext & last")
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "<p>&lt;script&gt;alert(1)&lt;/script&gt;<br>line two</p><p>next &amp; last</p>" in html


def test_one_bad_byte_in_a_utf8_part_replaces_that_byte_only() -> None:
    mail = parsed("utf8_bad_byte")
    assert mail.text == "Привет! Где мой заказ 1042? \ufffd Спасибо, Ольга" and mail.subject == "Заказ"


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("gb2312_over_gbk", "您好，朱镕基先生的订单还没有到。"),  # 镕 is GBK, not GB 2312
        ("ks_c_5601_over_cp949", "똠방각하 주문 확인 부탁드립니다"),  # 똠 is cp949, not EUC-KR
        ("latin1_over_cp1252", "Die Rechnung über 20 € ist „falsch“ – bitte prüfen."),
    ],
)
def test_a_declared_charset_is_read_as_the_superset_mail_programs_write(name: str, text: str) -> None:
    assert parsed(name).text == text


def test_encoded_words_are_read_in_the_superset_of_their_charset() -> None:
    mail = parsed("gb2312_over_gbk")  # =?gb2312?B?...?= over GBK bytes
    assert mail.subject == "镕的订单" and mail.sender_name == "李镕"


def test_undeclared_8bit_headers_are_read_as_utf8_then_cp1252() -> None:
    assert parsed("undeclared_8bit_subject").subject == "Café crème – commande"
    mail = parsed("utf8_headers_rfc6532")  # RFC 6532: UTF-8 names and addresses
    assert mail.sender == "jöhn@exämple.com" and mail.sender_name == "Jöhn Dœ"
    assert mail.subject == "Заказ für Jöhn" and mail.message_id == "utf8-from-1@exämple.com"


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("icloud_vacation", "auto_submitted"),  # X-Apple-Action: VACATION, no Auto-Submitted
        ("kddi_bounce", "bounce"),  # a no-reply sender, multipart/mixed, a Japanese subject
        ("noreply_sender", "no_reply_sender"),
        ("bounce_null_from", "bounce"),
        ("bounce_name_only", "bounce"),
        ("bounce_malformed_from", "bounce"),
    ],
)
def test_auto_replies_and_bounces_without_rfc3834_headers(name: str, reason: str) -> None:
    assert parsed(name).no_auto_reply == reason


@pytest.mark.parametrize(
    "header",
    [
        "X-Autoreply: yes",
        "X-Autorespond: Thank you",
        "X-Auto-Response-Suppress: All",
        "Precedence: auto_reply",
        "X-Failed-Recipients: gone@client.example",
        "Subject: Automatic reply: Order",
        "Subject: Out of Office: Order",
        "Subject: Abwesenheitsnotiz: Bestellung",
        "Subject: Mail delivery failed: returning message to sender",
    ],
)
def test_every_common_auto_reply_signal(header: str) -> None:
    name = header.partition(": ")[0]
    subject = "" if name == "Subject" else "Subject: Order\r\n"
    raw = f"From: anna@client.example\r\nTo: support@shop.example\r\n{subject}{header}\r\n\r\nhi\r\n"
    assert parse_mail(raw.encode()).no_auto_reply in ("auto_submitted", "bounce")


@pytest.mark.parametrize(
    ("name", "bounced", "sender"),
    [
        ("bounce_null_from", "omnirouter.msg_cccccccccccccccccccccccc@shop.example", "mailer-daemon@bounce.invalid"),
        ("bounce_name_only", "omnirouter.msg_dddddddddddddddddddddddd@shop.example", "mailer-daemon@bounce.invalid"),
        ("bounce_malformed_from", "omnirouter.msg_eeeeeeeeeeeeeeeeeeeeeeee@shop.example", "postmaster@[mx.relay]"),
        ("kddi_bounce", "omnirouter.msg_bbbbbbbbbbbbbbbbbbbbbbbb@shop.example", "no-reply@ezweb.ne.jp"),
    ],
)
def test_a_bounce_names_the_mail_it_returns_even_without_a_sender(name: str, bounced: str, sender: str) -> None:
    mail = parsed(name)
    assert mail.sender == sender and bounced in mail.bounced and mail.bounce_error
    assert to_inbound(mail, "default").meta["email"]["bounced"] == list(mail.bounced)
    assert parsed("bounce_null_from").bounce_error == "bounced: 5.1.1; smtp; 550 5.1.1 User unknown"


def test_mails_sharing_a_message_id_are_told_apart_by_sender_and_a_missing_one_by_content() -> None:
    raw = (FIXTURES / "gmail_reply.eml").read_bytes()
    other = raw.replace(b"anna.berzina@gmail.com", b"someone.else@gmail.com")
    first, second = parse_mail(raw), parse_mail(other)
    assert first.message_id == second.message_id and first.dedup_key != second.dedup_key
    assert to_inbound(first, "default").external_id == f"{first.message_id}|anna.berzina@gmail.com"
    no_id = (FIXTURES / "no_message_id.eml").read_bytes()
    relayed = b"Received: from mx2.example by mx.shop.example; Tue, 10 Dec 2024 09:00:01 +0100\r\n" + no_id
    assert parse_mail(no_id).message_id == parse_mail(relayed).message_id  # another delivery: the same
    changed = no_id.replace(b"\r\n\r\n", b"\r\n\r\nP.S. one more thing\r\n", 1)
    assert parse_mail(changed).message_id != parse_mail(no_id).message_id


def test_an_auto_reply_from_the_null_sender_is_no_bounce() -> None:
    """RFC 3834 asks auto-responders to send from the null sender: a vacation reply with
    ``Return-Path: <>`` must not mark the reply it answers as undelivered."""
    raw = b"Return-Path: <>\r\n" + (FIXTURES / "icloud_vacation.eml").read_bytes()
    mail = parse_mail(raw)
    assert mail.no_auto_reply == "auto_submitted" and mail.bounced == () and mail.bounce_error is None
    assert parse_mail(raw.replace(b"X-Apple-Action: VACATION\r\n", b"")).no_auto_reply == "bounce"


def test_every_reason_not_to_answer_a_mail_has_words_in_the_console() -> None:
    assert {*REASONS, "own_address"} <= set(WORDS["reason"])
