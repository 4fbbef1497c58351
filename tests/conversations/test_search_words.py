"""The tokens a message or contact is found by: the query's tokens must be among the text's."""

from typing import Any

import pytest

from conversations.repositories import Repositories
from conversations.search_words import MAX_WORDS, fold, highlight, search_words, words_filter
from tests.conftest import raw_database_of
from tests.factories import inbound, record


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


def test_highlight_marks_matching_words_and_escapes_hostile_text() -> None:
    html = str(highlight('<script>alert("x")</script> Bērziņa zvanīs', "berzina"))
    assert "<script>" not in html
    assert "&lt;script&gt;" in html
    assert "<mark>Bērziņa</mark>" in html
    assert "<mark>" not in html.replace("<mark>Bērziņa</mark>", "")


def test_highlight_marks_the_last_token_as_a_prefix_and_an_order_number() -> None:
    assert "<mark>завтра</mark>" in str(highlight("Позвоните завтра", "зав"))
    assert "<mark>A-10234</mark>" in str(highlight("Order A-10234 is late", "a-10234"))


def test_highlight_of_an_empty_query_is_the_escaped_text() -> None:
    assert str(highlight("<b>hi</b>", "  ")) == "&lt;b&gt;hi&lt;/b&gt;"


async def test_words_filter_finds_in_the_embedded_store(store: Repositories) -> None:
    collection = raw_database_of(store).search_words_probe
    texts = ["Sveiki, Bērziņa kundze", "Позвоните завтра: +371 2000 0000", "Order A-10234 for anna@example.lv"]
    await collection.insert_many([{"_id": i, "words": search_words(t)} for i, t in enumerate(texts)])

    async def ids(query: str) -> list[int]:
        return sorted([doc["_id"] async for doc in collection.find(words_filter(query))])

    assert await ids("berzina kund") == [0]
    assert await ids("завт") == [1]
    assert await ids("20000000") == [1]
    assert await ids("A-10234 anna@example.lv") == [2]
    assert await ids("berzina завтра") == []
    assert words_filter(" !? ") is None


async def test_messages_are_found_by_their_words_within_their_account_only(
    store: Repositories, raw_database: Any
) -> None:
    await record(store, inbound("s1", "anna", "Mans pasūtījums A-10234 nav pienācis", account="acme"))
    await record(store, inbound("s2", "ivan", "Позвоните мне: +371 2000 0000", account="acme"))
    await record(store, inbound("s3", "eve", "pasūtījums A-10234 of someone else", account="rival"))
    found = await store.messages.search_messages("acme", "pasutijums a-10234")
    assert [m.text for m in found] == ["Mans pasūtījums A-10234 nav pienācis"]
    assert [m.external_id for m in await store.messages.search_messages("acme", "20000000")] == ["s2"]
    assert [m.external_id for m in await store.messages.search_messages("rival", "a-10234")] == ["s3"]
    assert await store.messages.search_messages("acme", "  ,, ") == []

    # a message stored by an earlier release (no words) is found after the start-up backfill
    await raw_database.messages.update_many({}, {"$unset": {"words": ""}})
    assert await store.messages.search_messages("acme", "позвоните") == []
    await store.messages.backfill_words()
    assert [m.external_id for m in await store.messages.search_messages("acme", "позвоните")] == ["s2"]
