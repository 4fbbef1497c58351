"""How texts are measured and split for SMS: GSM-7 and UCS-2, 160/153 and 70/67 units."""

from __future__ import annotations

import pytest

from bot.handlers.sms.segments import shape, split_for_sms


@pytest.mark.parametrize(
    ("text", "encoding", "units", "segments"),
    [
        ("a" * 160, "GSM-7", 160, 1),
        ("a" * 161, "GSM-7", 161, 2),
        ("a" * 306, "GSM-7", 306, 2),
        ("a" * 307, "GSM-7", 307, 3),
        ("Grüße, café: ÄÖÜ ñ £5 @home", "GSM-7", 27, 1),
        ("{" * 80, "GSM-7", 160, 1),  # extension characters take two septets
        ("{" * 81, "GSM-7", 162, 2),
        ("a" * 152 + "€" + "a" * 10, "GSM-7", 164, 2),  # the escape never splits from its character
        ("Привет" * 11 + "Прив", "UCS-2", 70, 1),
        ("ж" * 71, "UCS-2", 71, 2),
        ("ж" * 134, "UCS-2", 134, 2),
        ("ж" * 135, "UCS-2", 135, 3),
        ("😀" * 35, "UCS-2", 70, 1),  # an emoji is a surrogate pair: two units
        ("a" * 66 + "😀" + "a", "UCS-2", 69, 1),
        ("a" * 66 + "😀" + "a" * 5, "UCS-2", 73, 2),
        ("", "GSM-7", 0, 0),
    ],
)
def test_shape(text: str, encoding: str, units: int, segments: int) -> None:
    assert shape(text) == (shape(text).__class__(encoding, units, segments))


def test_one_character_outside_gsm7_makes_the_whole_text_ucs2() -> None:
    assert shape("a" * 100).segments == 1
    assert shape("a" * 99 + "ā").encoding == "UCS-2" and shape("a" * 99 + "ā").segments == 2


def test_split_keeps_words_whole_and_every_part_within_the_limit() -> None:
    text = " ".join(["delivery"] * 60)  # 539 characters
    for limit in (1, 2, 3):
        parts = split_for_sms(text, limit)
        assert all(shape(p).segments <= limit for p in parts)
        assert " ".join(parts) == text
        assert all(p.split() and set(p.split()) == {"delivery"} for p in parts)
    assert split_for_sms(text, 10) == [text]
    assert len(split_for_sms(text, 1)) == 4


def test_split_cuts_inside_a_word_only_when_it_must_and_never_inside_an_emoji() -> None:
    assert [len(p) for p in split_for_sms("x" * 400, 1)] == [160, 160, 80]
    emoji_parts = split_for_sms("😀" * 100, 1)
    assert all(shape(p).segments == 1 for p in emoji_parts)
    assert "".join(emoji_parts) == "😀" * 100


def test_split_of_nothing_and_a_bad_limit() -> None:
    assert split_for_sms("   ", 3) == []
    with pytest.raises(ValueError):
        split_for_sms("hi", 0)
