"""The bot's forms, slots, actions and questions, read from Rasa's domain and rules formats.

``config/dialogue/domain.yml`` is a Rasa domain (``slots:`` with ``mappings:`` of ``from_entity``,
``from_text`` and ``from_intent``; ``forms:`` with ``required_slots``; ``responses:`` whose
variations choose a language with Rasa's ``condition: [{type: slot, name: language, value: lv}]``;
``actions:``). ``config/dialogue/rules.yml`` holds Rasa rules; three shapes are understood, the
ones Rasa's documentation teaches for forms:

* an intent starting a form: ``[intent: X, action: F, active_loop: F]``;
* what a form does when it is complete: ``condition: [active_loop: F]``, steps
  ``[action: F, active_loop: null, ..., action: A]`` (A: a custom action or an ``utter_`` response);
* an intent answered by an action: ``[intent: X, action: A]``.

Three keys of our own sit beside Rasa's: ``validation:`` (slot -> ``pattern``, a regular expression
an answer must match), ``max_attempts`` (wrong answers to one question before the customer is
handed to a human, 3 by default) and ``offline:`` (action -> a response said instead while no action
server is configured, so a starter bot works before its business's server exists). A wrong file stops start-up with the file and what is wrong.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.nlu.yaml_files import parse_mapping, read_mapping

DOMAIN_FILE, RULES_FILE = "domain.yml", "rules.yml"


class DomainError(ValueError):
    """The dialogue files are wrong; the message names the file and the problem."""


@dataclass(frozen=True)
class SlotMapping:
    kind: str  # from_entity | from_text | from_intent
    entity: str | None = None
    intents: tuple[str, ...] = ()  # only after these intents (from_intent: the ones that set it)
    not_intents: tuple[str, ...] = ()
    value: Any = None  # from_intent: the value set
    for_form: str | None = None  # conditions: only while this form asks for the slot


@dataclass(frozen=True)
class Slot:
    name: str
    mappings: tuple[SlotMapping, ...]
    values: tuple[str, ...] = ()  # a categorical slot's allowed values
    pattern: re.Pattern[str] | None = None


@dataclass(frozen=True)
class Form:
    name: str
    required: tuple[str, ...]
    submit: str | None = None  # the action or response run once every slot is filled


@dataclass(frozen=True)
class HttpAction:
    """A declarative action: one HTTP call whose answer sets slots and picks the response said."""

    name: str
    method: str  # GET or POST
    url: str  # "{slot}" replaced by the slot's value, URL-escaped
    headers: Mapping[str, str] = field(default_factory=dict)  # "{slot}" and "{secret:NAME}" (sealed in the store)
    body: Mapping[str, Any] | None = None  # POST: a JSON object, "{slot}" in its strings
    timeout: float = 5.0
    slots: Mapping[str, str] = field(default_factory=dict)  # slot -> path in the JSON answer ("order.status")
    reply: str | None = None  # the response said after a 2xx answer
    not_found: str | None = None  # the response said after a 404 (otherwise a failure: a human takes over)


@dataclass
class Domain:
    slots: dict[str, Slot] = field(default_factory=dict)
    forms: dict[str, Form] = field(default_factory=dict)
    responses: dict[str, dict[str | None, list[str]]] = field(default_factory=dict)  # name -> language -> texts
    actions: tuple[str, ...] = ()
    starts: dict[str, str] = field(default_factory=dict)  # intent -> form it starts
    answers: dict[str, str] = field(default_factory=dict)  # intent -> action or response it runs
    max_attempts: int = 3
    offline: dict[str, str] = field(default_factory=dict)  # action -> response said while no server is set
    http_actions: dict[str, HttpAction] = field(default_factory=dict)

    def form_for(self, intent: str) -> Form | None:
        name = self.starts.get(intent)
        return self.forms.get(name) if name else None

    def response(self, name: str, language: str, default_language: str) -> list[str]:
        """The texts of response ``name`` for ``language`` (else the default language's, else the
        unconditioned variations); empty when there is none."""
        variations = self.responses.get(name, {})
        return variations.get(language) or variations.get(default_language) or variations.get(None) or []

    def as_rasa(self) -> dict[str, Any]:
        """The domain as Rasa's action server receives it (slots, forms, responses, actions)."""
        return {
            "version": "3.1",
            "slots": {name: {"type": "any", "mappings": [{"type": "custom"}]} for name in self.slots},
            "forms": {name: {"required_slots": list(form.required)} for name, form in self.forms.items()},
            "responses": {
                name: [
                    {"text": text, **({"condition": [_language_condition(lang)]} if lang else {})}
                    for lang, texts in variations.items()
                    for text in texts
                ]
                for name, variations in self.responses.items()
            },
            "actions": list(self.actions),
        }


def _language_condition(language: str) -> dict[str, str]:
    return {"type": "slot", "name": "language", "value": language}


def load_domain(folder: Path) -> Domain:
    """Read ``domain.yml`` and ``rules.yml`` of ``folder``; no folder means no forms."""
    domain_file, rules_file = folder / "domain.yml", folder / "rules.yml"
    raw = _read(domain_file) if domain_file.exists() else {}
    rules = _read(rules_file) if rules_file.exists() else {}
    return domain_from(raw, str(domain_file), rules, str(rules_file))


def parse_domain(domain_text: str, rules_text: str) -> Domain:
    """The domain from the texts of ``domain.yml`` and ``rules.yml`` (an account's copies edited
    in the console); errors name them so."""
    shape = "(Rasa's domain or rules format)"
    raw = parse_mapping(domain_text, DOMAIN_FILE, DomainError, shape)
    return domain_from(raw, DOMAIN_FILE, parse_mapping(rules_text, RULES_FILE, DomainError, shape), RULES_FILE)


def domain_from(raw: Mapping[str, Any], domain_file: str, rules: Mapping[str, Any], rules_file: str) -> Domain:
    domain = Domain(
        slots=_slots(raw.get("slots") or {}, raw.get("validation") or {}, domain_file),
        responses=_responses(raw.get("responses") or {}, domain_file),
        actions=tuple(str(a) for a in raw.get("actions") or []),
        max_attempts=_attempts(raw.get("max_attempts", 3), domain_file),
        offline={str(k): str(v) for k, v in (raw.get("offline") or {}).items()},
    )
    domain.http_actions = _http_actions(raw.get("http_actions") or {}, domain, domain_file)
    domain.forms = _forms(raw.get("forms") or {}, domain, domain_file)
    listed = rules.get("rules") or []
    if not isinstance(listed, list) or not all(isinstance(rule, Mapping) for rule in listed):
        raise DomainError(f"{rules_file}: rules: must be a list of rules, each with `steps:`")
    _rules(listed, domain, rules_file)
    return domain


def _read(path: Path) -> Mapping[str, Any]:
    return read_mapping(path, DomainError, "(Rasa's domain or rules format)")


def _attempts(value: Any, path: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 20:
        raise DomainError(f"{path}: max_attempts must be a whole number from 1 to 20, got {value!r}")
    return value


def _names(value: Any) -> tuple[str, ...]:
    return tuple(str(v) for v in ([value] if isinstance(value, str) else value or []))


def _slots(raw: Mapping[str, Any], validation: Mapping[str, Any], path: str) -> dict[str, Slot]:
    slots = {}
    for name, spec in raw.items():
        if not isinstance(spec, Mapping):
            raise DomainError(f"{path}: slots.{name} must be a mapping with `mappings:`")
        mappings = []
        for n, m in enumerate(spec.get("mappings") or []):
            kind = m.get("type") if isinstance(m, Mapping) else None
            if kind not in ("from_entity", "from_text", "from_intent"):
                raise DomainError(
                    f"{path}: slots.{name}.mappings[{n}]: type must be from_entity, from_text or from_intent, got {kind!r}"
                )
            if kind == "from_entity" and not m.get("entity"):
                raise DomainError(f"{path}: slots.{name}.mappings[{n}]: from_entity needs `entity:`")
            forms = [c.get("active_loop") for c in m.get("conditions") or [] if isinstance(c, Mapping)]
            mappings.append(
                SlotMapping(
                    kind=str(kind),
                    entity=m.get("entity"),
                    intents=_names(m.get("intent")),
                    not_intents=_names(m.get("not_intent")),
                    value=m.get("value"),
                    for_form=str(forms[0]) if forms and forms[0] else None,
                )
            )
        rule = (validation.get(name) or {}).get("pattern") if isinstance(validation.get(name), Mapping) else None
        try:
            pattern = re.compile(str(rule)) if rule else None
        except re.error as exc:
            raise DomainError(f"{path}: validation.{name}.pattern is not a regular expression: {exc}") from None
        slots[str(name)] = Slot(str(name), tuple(mappings), _names(spec.get("values")), pattern)
    return slots


def _responses(raw: Mapping[str, Any], path: str) -> dict[str, dict[str | None, list[str]]]:
    responses: dict[str, dict[str | None, list[str]]] = {}
    for name, variations in raw.items():
        if not isinstance(variations, list):
            raise DomainError(f"{path}: responses.{name} must be a list of variations with `text:`")
        by_language: dict[str | None, list[str]] = {}
        for variation in variations:
            if not isinstance(variation, Mapping) or not isinstance(variation.get("text"), str):
                raise DomainError(f"{path}: responses.{name}: every variation needs a `text:`")
            language = next(
                (
                    str(c.get("value"))
                    for c in variation.get("condition") or []
                    if isinstance(c, Mapping) and c.get("name") == "language"
                ),
                None,
            )
            by_language.setdefault(language, []).append(variation["text"])
        responses[str(name)] = by_language
    return responses


_PATH = re.compile(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*")


def _http_actions(raw: Mapping[str, Any], domain: Domain, path: str) -> dict[str, HttpAction]:
    actions = {}
    for name, spec in raw.items():
        where = f"{path}: http_actions.{name}"
        if not isinstance(spec, Mapping) or not str(spec.get("url", "")).startswith(("http://", "https://")):
            raise DomainError(f"{where} needs `url:`, an http:// or https:// URL")
        method = str(spec.get("method", "GET")).upper()
        if method not in ("GET", "POST"):
            raise DomainError(f"{where}: method must be GET or POST, got {method}")
        slots = {str(k): str(v) for k, v in (spec.get("slots") or {}).items()}
        bad = [p for p in slots.values() if not _PATH.fullmatch(p)]
        if bad:
            raise DomainError(f"{where}: slots paths are dotted names like order.status, got {bad[0]!r}")
        for key in ("reply", "not_found"):
            if spec.get(key) and str(spec[key]) not in domain.responses:
                raise DomainError(f"{where}: {key} names {spec[key]}, which is not under responses:")
        if "{secret:" in str(spec["url"]) + str(spec.get("body", "")):
            raise DomainError(f"{where}: {{secret:NAME}} may be used in headers only")
        body = spec.get("body")
        if body is not None and not isinstance(body, Mapping):
            raise DomainError(f"{where}: body must be a mapping (sent as JSON)")
        actions[str(name)] = HttpAction(
            str(name),
            method,
            str(spec["url"]),
            {str(k): str(v) for k, v in (spec.get("headers") or {}).items()},
            body,
            _timeout(spec.get("timeout", 5.0), where),
            slots,
            str(spec["reply"]) if spec.get("reply") else None,
            str(spec["not_found"]) if spec.get("not_found") else None,
        )
    return actions


def _timeout(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.1 <= value <= 60:
        raise DomainError(f"{where}: timeout must be 0.1 to 60 seconds, got {value!r}")
    return float(value)


def _forms(raw: Mapping[str, Any], domain: Domain, path: str) -> dict[str, Form]:
    forms = {}
    for name, spec in raw.items():
        required = _names(spec.get("required_slots") if isinstance(spec, Mapping) else None)
        if not required:
            raise DomainError(f"{path}: forms.{name} needs `required_slots:`")
        unknown = [slot for slot in required if slot not in domain.slots]
        if unknown:
            raise DomainError(f"{path}: forms.{name} requires slots not defined under slots: {', '.join(unknown)}")
        missing = [
            s
            for s in required
            if f"utter_ask_{s}" not in domain.responses and f"utter_ask_{name}_{s}" not in domain.responses
        ]
        if missing:
            raise DomainError(
                f"{path}: forms.{name}: no question for {', '.join(missing)} (add responses utter_ask_<slot>)"
            )
        forms[str(name)] = Form(str(name), required)
    return forms


def _rules(rules: Sequence[Any], domain: Domain, path: str) -> None:
    for n, rule in enumerate(rules):
        steps = [s for s in (rule.get("steps") or []) if isinstance(s, Mapping)] if isinstance(rule, Mapping) else []
        name = rule.get("rule", "unnamed") if isinstance(rule, Mapping) else repr(rule)
        where = f"{path}: rules[{n}] ({name})"
        actions = [str(s["action"]) for s in steps if "action" in s]
        intents = [str(s["intent"]) for s in steps if "intent" in s]
        loop = next((c.get("active_loop") for c in rule.get("condition") or [] if isinstance(c, Mapping)), None)
        if loop:  # what a form does when it is complete
            form = domain.forms.get(str(loop))
            if form is None or len(actions) < 2 or actions[0] != loop:
                raise DomainError(f"{where}: a rule with condition active_loop runs the form, then one action")
            domain.forms[form.name] = Form(form.name, form.required, actions[-1])
        elif intents and actions and actions[0] in domain.forms:
            domain.starts[intents[0]] = actions[0]
        elif intents and actions:
            domain.answers[intents[0]] = actions[0]
        else:
            raise DomainError(f"{where}: expected an intent followed by an action or a form")
    for intent, answer in domain.answers.items():
        if answer.startswith("utter_") and answer not in domain.responses:
            raise DomainError(
                f"{path}: the rule for {intent} says {answer}, which is not under the domain's responses:"
            )
    for form in domain.forms.values():
        target = form.submit
        if target and not target.startswith("utter_") and target not in (*domain.actions, *domain.http_actions):
            raise DomainError(f"{path}: form {form.name} ends with {target}, which is not under the domain's actions:")


def check_timeouts(domain: Domain, action_timeout: float | None, lease_seconds: float) -> None:
    """A message's decision may call two actions (a validation, then the form's action); they must
    end well within the dispatch lease, or the sweeper decides the message again meanwhile.
    ``action_timeout``: the action server's, ``None`` when there is none."""
    timeouts = [*([action_timeout] if action_timeout else []), *(a.timeout for a in domain.http_actions.values())]
    longest = max(timeouts, default=0.0)
    if timeouts and 3 * longest >= lease_seconds:
        raise DomainError(
            f"an action may take {longest:g} s, too long for dispatch.lease_seconds = {lease_seconds:g}: "
            "keep action timeouts under a third of the lease"
        )
