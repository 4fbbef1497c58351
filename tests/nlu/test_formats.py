"""Training data files: Rasa YAML and JSONL read, written and read back; bad files are reported
with their file, line and problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.nlu.data import Entity, Example, TrainingData
from bot.nlu.formats import (
    NluFormatError,
    load_file,
    load_paths,
    parse_annotations,
    read_jsonl,
    read_rasa_yaml,
    write_jsonl,
    write_rasa_yaml,
)

RASA = """\
version: "3.1"
nlu:
- intent: order_status
  examples: |
    - where is order [A-12345](order_number)?
    - is my parcel from [Rīga]{"entity": "city", "value": "Riga"} on its way
    - status please
- intent: greet
  metadata:
    language: lv
  examples: |
    - sveiki
    - labdien
- synonym: Riga
  examples: |
    - Rīga
- regex: zip
  examples: |
    - LV-\\d{4}
- lookup: city
  examples: |
    - Riga
    - Tallinn
"""


def test_rasa_yaml_is_read_with_entities_resources_and_languages() -> None:
    data = read_rasa_yaml(RASA, "shop.en.yml", language="en")
    first, second, third, greet = data.examples[:4]
    assert first == Example(
        "where is order A-12345?", "order_status", (Entity("order_number", "A-12345", 15, 22),), "en", "shop.en.yml:5"
    )
    assert second.text == "is my parcel from Rīga on its way"
    assert second.entities == (Entity("city", "Riga", 18, 22),)
    assert third.source == "shop.en.yml:7" and third.entities == ()
    assert greet.language == "lv" and greet.source == "shop.en.yml:12"
    assert data.synonyms == {"Riga": ["Rīga"]}
    assert data.regexes == {"zip": [r"LV-\d{4}"]}
    assert data.lookups == {"city": ["Riga", "Tallinn"]}
    assert data.synonym_map()["rīga"] == "Riga"


def test_rasa_yaml_round_trips() -> None:
    data = read_rasa_yaml(RASA, "a.yml", language="en")
    again = read_rasa_yaml(write_rasa_yaml(data), "b.yml")
    assert [(e.text, e.intent, e.entities, e.language) for e in again.examples] == [
        (e.text, e.intent, e.entities, e.language) for e in data.examples
    ]
    assert (again.synonyms, again.regexes, again.lookups) == (data.synonyms, data.regexes, data.lookups)


def test_jsonl_round_trips() -> None:
    data = TrainingData(
        examples=[
            Example("ship to Riga", "delivery", (Entity("city", "Riga", 8, 12),), "en"),
            Example("привет", "greet", language="ru"),
        ]
    )
    again = read_jsonl(write_jsonl(data), "x.jsonl")
    assert [(e.text, e.intent, e.entities, e.language) for e in again.examples] == [
        (e.text, e.intent, e.entities, e.language) for e in data.examples
    ]


def test_language_comes_from_the_file_name(tmp_path: Path) -> None:
    (tmp_path / "lv.yml").write_text("nlu:\n- intent: greet\n  examples: |\n    - sveiki\n")
    (tmp_path / "faq.ru.jsonl").write_text('{"text": "привет", "intent": "greet"}\n')
    (tmp_path / "notes.txt").write_text("not training data")
    data = load_paths([tmp_path])
    assert sorted((e.text, e.language) for e in data.examples) == [("sveiki", "lv"), ("привет", "ru")]
    assert load_file(tmp_path / "lv.yml", language="en").examples[0].language == "en"


def test_the_starter_data_loads() -> None:
    data = load_paths([Path(__file__).resolve().parents[2] / "config" / "nlu"])
    assert data.languages == ["en", "lv", "ru"]
    assert {"greet", "opening_hours", "order_status", "talk_to_human", "out_of_scope"} <= set(data.intents)


@pytest.mark.parametrize(
    ("text", "line", "problem"),
    [
        ("nlu:\n- intent: greet\n  examples: |\n    - hi\n    hello\n", 5, "must start with '- '"),
        ("nlu:\n- intent: greet\n  examples: [unclosed\n", 4, "not valid YAML"),
        ("nlu:\n- intent: greet\n  exmples: |\n    - hi\n", 3, "unknown key 'exmples'"),
        ("nlu:\n- intent: greet\n", 2, "has no `examples:`"),
        ("nlu:\n- regex: zip\n  examples: |\n    - ([a-z\n", 4, "regex 'zip'"),
        ("nlu:\n- intent: greet\n  examples: |\n    - hi [there]{not json}\n", 4, "not valid JSON"),
        ("nlu:\n- examples: |\n    - hi\n", 2, "exactly one of intent"),
        ("nlu: 5\n", 1, "must be a list"),
        ("- just a list\n", 1, "mapping with an `nlu:` key"),
    ],
)
def test_bad_yaml_names_file_line_and_problem(text: str, line: int, problem: str) -> None:
    with pytest.raises(NluFormatError) as caught:
        read_rasa_yaml(text, "data/en.yml")
    assert caught.value.line == line, str(caught.value)
    assert problem in caught.value.problem
    assert str(caught.value).startswith(f"data/en.yml:{line}: ")


@pytest.mark.parametrize(
    ("text", "line", "problem"),
    [
        ('{"text": "hi", "intent": "greet"}\n{"text": "yo"\n', 2, "not valid JSON"),
        ('\n\n{"text": "hi"}\n', 3, '"intent" must be'),
        ('["hi", "greet"]\n', 1, "JSON object"),
        ('{"text": " ", "intent": "greet"}\n', 1, '"text" must be'),
        (
            '{"text": "hi", "intent": "greet", "entities": [{"entity": "x", "start": 0, "end": 9}]}\n',
            1,
            "outside the text",
        ),
    ],
)
def test_bad_jsonl_names_file_line_and_problem(text: str, line: int, problem: str) -> None:
    with pytest.raises(NluFormatError) as caught:
        read_jsonl(text, "train.jsonl")
    assert (caught.value.path, caught.value.line) == ("train.jsonl", line)
    assert problem in caught.value.problem


def test_unreadable_files_are_reported(tmp_path: Path) -> None:
    with pytest.raises(NluFormatError, match="no such file"):
        load_paths([tmp_path / "missing.yml"])
    binary = tmp_path / "en.yml"
    binary.write_bytes(b"nlu:\n- intent: \xff\xfe\n")
    with pytest.raises(NluFormatError, match="not UTF-8"):
        load_paths([binary])


def test_annotations() -> None:
    assert parse_annotations("from [Riga](city:Rīga) to [Tallinn](city)") == (
        "from Riga to Tallinn",
        (Entity("city", "Rīga", 5, 9), Entity("city", "Tallinn", 13, 20)),
    )
    text, entities = parse_annotations('[two](n){"x": 1}')
    assert text == 'two{"x": 1}' and entities[0] == Entity("n", "two", 0, 3)
