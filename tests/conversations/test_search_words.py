"""The tokens a message or contact is found by: the query's tokens must be among the text's."""

import pytest

from conversations.search_words import MAX_WORDS, fold, search_words


def found(text: str, query: str) -> bool:
    return set(search_words(query)) <= set(search_words(text))


def test_latvian_diacritics_fold_both_ways() -> None:
    assert fold("Bērziņa Ģirts Šķūnis") == "berzina girts skunis"
    assert found("Sveiki, Bērziņa kundze!", "berzina")
    assert found("Sveiki, berzina kundze!", "Bērziņa")


def test_russian_words_are_lower_cased_and_yo_folds() -> None:
    assert found("Пишите, пожалуйста, ЗАВТРА", "завтра")
    assert found("ёлка", "елка")


@pytest.mark.parametrize("query", ["20000000", "+371 2000 0000", "37120000000", "0037120000000"])
def test_a_phone_number_is_found_by_its_digits_with_or_without_country_code(query: str) -> None:
    assert found("Zvaniet: +371 2000 0000", query)


def test_an_email_address_is_one_token() -> None:
    words = search_words("Write to Anna@Example.LV please")
    assert "anna@example.lv" in words
    assert found("Write to Anna@Example.LV please", "anna@example.lv")
    assert not found("Write to anna@example.com", "anna@example.lv")


def test_an_order_number_is_kept_whole_and_in_parts() -> None:
    assert found("Order A-10234 is late", "A-10234")
    assert found("Order A-10234 is late", "10234")
    assert not found("Order A-10235 is late", "A-10234")


def test_short_digit_runs_are_not_phone_numbers() -> None:
    assert search_words("room 12 at 10:30") == ["room", "12", "at", "10", "30"]


def test_tokens_are_distinct_and_bounded() -> None:
    assert search_words("yes yes YES") == ["yes"]
    assert len(search_words(" ".join(f"w{i}" for i in range(MAX_WORDS * 2)))) == MAX_WORDS
