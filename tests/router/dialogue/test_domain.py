"""The dialogue files (Rasa domain and rules) read, and refused with the file and what is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.router.dialogue.domain import DomainError, check_timeouts, load_domain

ROOT = Path(__file__).resolve().parents[3]


def test_the_starter_domain_has_the_order_form_started_by_its_intent_and_ended_by_the_action() -> None:
    domain = load_domain(ROOT / "config" / "dialogue")
    form = domain.form_for("order_status")
    assert form is not None and form.required == ("order_number",) and form.submit == "action_order_status"
    assert domain.response("utter_ask_order_number", "lv", "en")[0].startswith("Lūdzu, atsūtiet")
    assert domain.response("utter_ask_order_number", "de", "en")[0].startswith("Please send")  # the default
    assert domain.offline == {"action_order_status": "utter_order_noted"}
    rasa = domain.as_rasa()  # what the action server is sent
    assert rasa["forms"] == {"order_status_form": {"required_slots": ["order_number"]}}
    assert {"text": domain.response("utter_form_cancelled", "ru", "en")[0], "condition": [
        {"type": "slot", "name": "language", "value": "ru"}
    ]} in rasa["responses"]["utter_form_cancelled"]  # fmt: skip


def test_no_folder_means_no_forms(tmp_path: Path) -> None:
    domain = load_domain(tmp_path / "missing")
    assert domain.forms == {} and domain.starts == {}


DOMAIN = """
slots:
  city:
    mappings: [{type: from_text}]
forms:
  booking_form:
    required_slots: [city]
responses:
  utter_ask_city: [{text: "Which city?"}]
actions: [action_book]
"""


@pytest.mark.parametrize(
    ("domain", "rules", "message"),
    [
        ("slots: [", "", "domain.yml: not valid YAML"),
        ("- a list", "", "domain.yml: must be a mapping"),
        (DOMAIN.replace("from_text", "from_nowhere"), "", "slots.city.mappings[0]: type must be from_entity"),
        (DOMAIN.replace("{type: from_text}", "{type: from_entity}"), "", "from_entity needs `entity:`"),
        (
            DOMAIN.replace("[city]", "[city, date]"),
            "",
            "forms.booking_form requires slots not defined under slots: date",
        ),
        (DOMAIN.replace("utter_ask_city", "utter_city"), "", "forms.booking_form: no question for city"),
        (DOMAIN + "max_attempts: 0\n", "", "max_attempts must be a whole number from 1 to 20, got 0"),
        (DOMAIN + "validation: {city: {pattern: '('}}\n", "", "validation.city.pattern is not a regular expression"),
        (DOMAIN, "rules: [{rule: r, steps: [{intent: book}]}]", "rules[0] (r): expected an intent followed by"),
        (
            DOMAIN,
            "rules: [{rule: done, condition: [{active_loop: booking_form}], steps: [{action: booking_form}, {action: action_pay}]}]",
            "form booking_form ends with action_pay, which is not under the domain's actions:",
        ),
    ],
)
def test_a_wrong_file_is_refused_with_what_is_wrong(tmp_path: Path, domain: str, rules: str, message: str) -> None:
    (tmp_path / "domain.yml").write_text(domain)
    if rules:
        (tmp_path / "rules.yml").write_text(rules)
    with pytest.raises(DomainError) as refused:
        load_domain(tmp_path)
    assert message in str(refused.value)


def test_rules_start_forms_end_them_and_answer_intents(tmp_path: Path) -> None:
    (tmp_path / "domain.yml").write_text(DOMAIN)
    (tmp_path / "rules.yml").write_text(
        """
rules:
  - rule: start
    steps: [{intent: book}, {action: booking_form}, {active_loop: booking_form}]
  - rule: done
    condition: [{active_loop: booking_form}]
    steps: [{action: booking_form}, {active_loop: null}, {action: action_book}]
  - rule: faq
    steps: [{intent: hours}, {action: utter_ask_city}]
"""
    )
    domain = load_domain(tmp_path)
    assert domain.starts == {"book": "booking_form"} and domain.answers == {"hours": "utter_ask_city"}
    assert domain.forms["booking_form"].submit == "action_book"


def test_action_timeouts_must_end_well_within_the_dispatch_lease() -> None:
    domain = load_domain(ROOT / "config" / "dialogue")
    check_timeouts(domain, 5, 30)
    check_timeouts(domain, None, 2)  # no action server and no HTTP action: nothing to wait for
    with pytest.raises(DomainError, match=r"an action may take 10 s, too long for dispatch\.lease_seconds = 30"):
        check_timeouts(domain, 10, 30)
