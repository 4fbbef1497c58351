"""Reading recorded mails: charsets, multipart, attachments, HTML, quoted replies, loop safety."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.handlers.email.compose import reply_subject, text_to_html, tokens_in
from bot.handlers.email.parse import parse_mail, to_inbound
from bot.handlers.kit.protocol import MalformedPayload

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
