"""The tokens a message or contact is found by: the query's tokens must be among the text's."""

import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from conversations import search_words as module
from conversations.models import utcnow
from conversations.repositories import Repositories
from conversations.search_words import MAX_WORDS, fold, highlight, search_text, search_words, text_filter
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


def test_search_text_keeps_tokens_whole_as_letters_and_digits_with_marked_prefixes() -> None:
    stored = search_text("Order A-10234 for Anna@Example.LV").split()
    assert {"order", "a10234", "a", "10234", "annaexamplelv"} <= set(stored)
    assert {"pfxord", "pfxorde", "pfxorder", "pfxa10", "pfxa102", "pfxa1023"} <= set(stored)
    assert "pfxannaex" in stored and "pfxannaexa" not in stored  # prefixes stop at PREFIX_MAX characters
    assert "pfxor" not in stored and "ord" not in stored  # no prefix under 3, none unmarked
    assert all(t.isalnum() for t in stored)


def test_text_filter_asks_every_term_as_a_phrase_and_the_last_as_a_prefix() -> None:
    assert text_filter("Bērziņa kund") == {"$text": {"$search": '"berzina" "pfxkund"'}}
    assert text_filter("kundzei") == {"$text": {"$search": '"pfxkundze"'}, "search_text": {"$regex": "(?:^| )kundzei"}}
    assert text_filter("order 12") == {"$text": {"$search": '"order"'}, "search_text": {"$regex": "(?:^| )12"}}
    assert text_filter("12") == {"$text": {"$search": '"12"'}}
    assert text_filter(" !? ") is None


async def test_text_filter_finds_in_the_embedded_store(store: Repositories) -> None:
    collection = raw_database_of(store).search_text_probe
    await collection.create_index([("search_text", "text")], default_language="none")
    texts = [
        "Sveiki, Bērziņa kundze",
        "Позвоните завтра: +371 2000 0000",
        "Order A-10234 for anna@example.lv",
        "Order A-10235, room 12, kundzei",
    ]
    await collection.insert_many([{"_id": i, "search_text": search_text(t)} for i, t in enumerate(texts)])

    async def ids(query: str) -> list[int]:
        return sorted([doc["_id"] async for doc in collection.find(text_filter(query))])

    assert await ids("berzina kund") == [0]
    assert await ids("kundze") == [0, 3]  # the last word is a prefix: "kundzei" too
    assert await ids("kundzei") == [3]  # longer than the stored prefixes: checked whole
    assert await ids("kun") == [0, 3]
    assert await ids("завт") == [1]
    assert await ids("20000000") == [1]
    assert await ids("A-10234 anna@example.lv") == [2]
    assert await ids("a-1023") == [2, 3]  # an order number being typed: a prefix as a whole
    assert await ids("order anna@example.l") == [2]
    assert await ids("order a-10235") == [3]
    assert await ids("order 1") == [2, 3]  # a one-character last word, checked among the hits
    assert await ids("12") == [3]
    assert await ids("berzina завтра") == []  # every word must match, not any
    assert await ids("order berz") == []


async def test_messages_are_found_by_their_words_within_their_account_only(
    store: Repositories, raw_database: Any
) -> None:
    await record(store, inbound("s1", "anna", "Mans pasūtījums A-10234 nav pienācis", account="acme"))
    await record(store, inbound("s2", "ivan", "Позвоните мне: +371 2000 0000", account="acme"))
    await record(store, inbound("s3", "eve", "pasūtījums A-10234 of someone else", account="rival"))
    found = await store.messages.search_messages("acme", "pasutijums a-10234")
    assert [m.text for m in found] == ["Mans pasūtījums A-10234 nav pienācis"]
    assert [m.external_id for m in await store.messages.search_messages("acme", "20000000")] == ["s2"]
    assert [m.external_id for m in await store.messages.search_messages("acme", "позво")] == ["s2"]
    assert [m.external_id for m in await store.messages.search_messages("rival", "a-10234")] == ["s3"]
    assert await store.messages.search_messages("acme", "someone") == []
    assert await store.messages.search_messages("acme", "  ,, ") == []


async def test_messages_stored_by_the_last_release_are_found_after_the_start_up_upgrade(
    store: Repositories, raw_database: Any
) -> None:
    """The last release stored a ``words`` array with an index on it, and no ``search_text``."""
    await record(store, inbound("s1", "ivan", "Позвоните мне: +371 2000 0000", account="acme"))
    await record(store, inbound("s2", "anna", "Order A-10234 is late", account="acme"))
    await raw_database.messages.update_many(
        {}, {"$set": {"words": ["an", "old", "array"]}, "$unset": {"search_text": ""}}
    )
    await raw_database.messages.create_index([("account_id", 1), ("words", 1)])
    assert await store.messages.search_messages("acme", "позвоните") == []

    await store.ensure_indexes()
    await store.ensure_indexes()  # the next start-up, over messages that have search_text now

    assert [m.external_id for m in await store.messages.search_messages("acme", "позвоните")] == ["s1"]
    assert [m.external_id for m in await store.messages.search_messages("acme", "order a-102")] == ["s2"]
    assert await raw_database.messages.count_documents({"words": {"$exists": True}}) == 0
    indexed = [dict(index["key"]) for index in (await raw_database.messages.index_information()).values()]
    assert not [key for key in indexed if "words" in key]


async def test_an_edited_message_is_found_by_its_new_words_only(store: Repositories) -> None:
    await record(store, inbound("e1", "anna", "Parcel to Riga please", account="acme"))
    await store.messages.apply_edit(inbound("e1", "anna", "Parcel to Jelgava please", account="acme"), utcnow())
    assert [m.external_id for m in await store.messages.search_messages("acme", "parcel jelg")] == ["e1"]
    assert await store.messages.search_messages("acme", "parcel riga") == []


def long_letter(chars: int, ending: str) -> str:
    """A customer's letter of ``chars`` characters (Latvian words, each one different) ending with
    ``ending``: the costliest text for the search terms, made in a child process."""
    words = " ".join(f"pasūtījums{n} Bērziņa" for n in range(chars // 20))
    return f"{words[: chars - len(ending) - 1]} {ending}"


async def test_a_long_message_is_found_by_its_first_words_and_by_an_address_phone_and_code_at_its_end(
    store: Repositories,
) -> None:
    text = long_letter(100_000, "anna@example.lv +371 2000 0000 A-10234")
    assert len(text) == 100_000
    await record(store, inbound("l1", "anna", text, account="acme"))
    for query in ("pasutijums0 berzina", "anna@example.lv", "20000000", "a-10234", "pasutijums7"):
        assert [m.external_id for m in await store.messages.search_messages("acme", query)] == ["l1"], query
    assert await store.messages.search_messages("acme", "pasutijums4900") == []  # a word past the first 200


async def test_a_long_edited_message_is_found_by_what_its_end_says_now(store: Repositories) -> None:
    await record(store, inbound("l2", "anna", long_letter(50_000, "order B-20001"), account="acme"))
    edited = inbound("l2", "anna", long_letter(50_000, "order C-30002"), account="acme")
    await store.messages.apply_edit(edited, utcnow())
    assert [m.external_id for m in await store.messages.search_messages("acme", "c-30002")] == ["l2"]
    assert await store.messages.search_messages("acme", "b-20001") == []


async def test_a_long_text_s_terms_are_made_in_another_process_and_a_dead_one_is_replaced(
    store: Repositories, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The router's own ``search_text`` is made to fail: a long message is still recorded with the
    terms of its whole text, so they were made in the child process (its own, unpatched module),
    not on one of the router's threads, whose Python would hold the GIL the event loop needs.
    A child killed meanwhile is replaced, and the message recorded all the same."""
    text = long_letter(20_000, "anna@example.lv")

    def not_here(_: str) -> str:
        raise AssertionError("a long text's terms made in the router's process")

    expected = search_text(text)
    monkeypatch.setattr(module, "search_text", not_here)
    assert await module.search_text_off_loop(text) == expected
    child = module._terms_process()
    for process in list(child._processes.values()):  # killed as an OOM killer would
        process.kill()
        process.join()
    monkeypatch.undo()
    await record(store, inbound("l3", "anna", text, account="acme"))
    assert [m.external_id for m in await store.messages.search_messages("acme", "anna@example.lv")] == ["l3"]
    assert module._terms_process() is not child  # the next long text goes to a new child
    assert await module.search_text_off_loop(text) == expected


_ROUTER = """
import asyncio
from conversations.search_words import search_text_off_loop, terms_process_ids

async def main():
    await search_text_off_loop("word " * 2000)
    print(terms_process_ids()[0], flush=True)
    await asyncio.sleep(60)

if __name__ == "__main__":
    asyncio.run(main())
"""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has ended; only its exit status is left to collect


def test_the_terms_child_dies_with_a_router_killed_by_sigkill(tmp_path: Path) -> None:
    """A router killed with SIGKILL (the OOM killer, kill -9) leaves no child making search terms
    behind (it would hold the router's pipes open, and its memory, for good)."""
    script = tmp_path / "router.py"
    script.write_text(_ROUTER)
    root = Path(__file__).resolve().parents[2]
    router = subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, cwd=root, env={**os.environ, "PYTHONPATH": str(root)}
    )
    try:
        assert router.stdout is not None
        child = int(router.stdout.readline())
        assert _alive(child)
        router.kill()
        router.wait(10)
        deadline = time.monotonic() + 10
        while _alive(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(child), f"the terms child {child} outlived its router"
    finally:
        router.kill()
        router.wait(10)


@pytest.mark.parametrize(
    "text",
    [
        "Zvaniet 0037120000000 vai 00 371 2000 0000, +7 (495) 123-45-67, 00.12.2024 un 1.2.3.4.5.6",
        "pasūtījumi A-10234/7, b-2-c, x_1-y, --a-b, a--b, 12-34-56-78 un +371-2000-0000.",
        "1 " + "!?.,;:" * 500 + " 0 " + "где мой заказ №12-345? " * 50,
    ],
    ids=["phones", "codes", "mixed"],
)
def test_phone_numbers_and_codes_are_the_ones_the_earlier_patterns_found(text: str) -> None:
    """The patterns were made cheaper on long texts (no optional "00", no letters given back):
    they find exactly what the earlier ones found."""
    earlier_phone = re.compile(r"(?<![\w])(?:\+|00)?\d[\d ().-]{5,}\d(?![\w])")
    earlier_code = re.compile(r"(?<!\w)\w+(?:[-/]\w+)+")
    folded = fold(text)
    assert [m.span() for m in module._PHONE.finditer(folded)] == [m.span() for m in earlier_phone.finditer(folded)]
    assert module._CODE.findall(folded) == earlier_code.findall(folded) != []


@pytest.mark.parametrize(
    "text",
    [
        "Your order is on its way: track it with the link in your e-mail.",
        "Bērziņa kundze, pasūtījums Nr. 12-345/6, +371 2000 0000, anna@example.lv",
        "x_1-y __ _a_ a-b --x ² ½ ٣٤٥ abc ab a Позвоните завтра",
    ],
)
def test_search_text_makes_the_terms_of_the_plain_rule(text: str) -> None:
    """Every token as a term (separators dropped) followed by its marked prefixes, however the
    function makes them (a word needs no regular expression)."""
    expected: dict[str, None] = {}
    for token in search_words(text):
        whole = re.sub(r"[\W_]+", "", token)
        if whole:
            expected.setdefault(whole, None)
        for size in range(3, min(len(whole), 6) + 1):
            expected.setdefault("pfx" + whole[:size], None)
    assert search_text(text) == " ".join(expected)
