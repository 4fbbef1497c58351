"""Typed settings: a TOML file (``config/omnirouter.toml``) with ``OMNIROUTER_*`` overrides.

Every setting has a section and a key (``[server] port``). The environment overrides a key as
``OMNIROUTER_<SECTION>_<KEY>`` (``OMNIROUTER_SERVER_PORT``); the most used ones also have a short
name (``OMNIROUTER_PORT``, ``OMNIROUTER_MONGODB_URI``). A bad value, an unknown key or an unknown
``OMNIROUTER_*`` variable stops start-up with one line naming the key and what is wrong.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar

from bot.business_hours import BusinessHours
from bot.handlers import registry
from bot.network_settings import ApiSettings, EgressSettings, ServerSettings, WebhookSettings
from bot.sending_settings import CampaignSettings, OutboxSettings
from bot.setting_fields import EnvValue, SettingsError, convert, read_toml
from bot.setting_fields import between as _between
from bot.setting_fields import one_of as _one_of
from bot.setting_fields import setting as _setting
from bot.setting_fields import url as _url
from bot.store_settings import StoreSettings

DEFAULT_CONFIG = Path("config/omnirouter.toml")
T = TypeVar("T")
ENV_PREFIX = "OMNIROUTER_"


@dataclass(frozen=True)
class AccountSettings:
    id: str = _setting("default", doc="id of the account (business) this install serves first")
    name: str = _setting("My business", doc="its display name")


@dataclass(frozen=True)
class DispatchSettings:
    lease_seconds: float = _setting(
        30.0, check=_between(1, 3600), doc="after this, a sweeper re-dispatches an unfinished message"
    )
    sweep_interval: float = _setting(
        5.0, check=_between(0.05, 3600), doc="how often the sweeper looks for unfinished dispatches, seconds"
    )
    queued_notice: str = _setting(
        "Thanks for your message! A member of our team will reply here as soon as possible.",
        doc="what the customer is told when their conversation is queued for a human",
    )
    max_bot_replies: int = _setting(
        20,
        check=_between(1, 100000),
        doc="automatic replies the bot sends in one conversation within `bot_reply_window` before it hands "
        "the conversation to a human (reason `bot_reply_limit`): stops loops with a customer that is itself a bot",
    )
    bot_reply_window: float = _setting(
        600.0, check=_between(1, 86400 * 7), doc="the window of `max_bot_replies`, seconds"
    )


def _secret_key(value: str) -> str | None:
    from conversations.sealing import SealingError, parse_key

    try:
        if value:
            parse_key(value)
    except SealingError as exc:
        return str(exc)
    return None


@dataclass(frozen=True)
class SecuritySettings:
    secret_key: str = _setting(
        "",
        check=_secret_key,
        alias="SECRET_KEY",
        doc="key that seals channel tokens and webhook secrets in the store (64 hex characters); empty: the key file",
    )
    secret_key_file: str = _setting(
        "var/secret.key", doc="where the key is kept when secret_key is empty; created on a fresh install"
    )


def _hours_spec(value: str) -> str | None:
    try:
        BusinessHours.parse(value, "UTC")
    except ValueError as exc:
        return str(exc)
    return None


def _timezone(value: str) -> str | None:
    from zoneinfo import ZoneInfo

    try:
        ZoneInfo(value)
    except (ValueError, KeyError, OSError):
        return "must be an IANA time zone such as Europe/Riga"
    return None


@dataclass(frozen=True)
class QueueSettings:
    strategy: str = _setting(
        "manual",
        check=_one_of("manual", "next", "auto"),
        doc="how queued conversations reach agents (an admin can change it per account and per inbox)",
    )
    reopen_days: float = _setting(7.0, check=_between(0, 365), doc="a customer writing again this soon reopens it")
    first_response_minutes: float = _setting(15.0, check=_between(0, 100_000), doc="first-response SLA")
    next_response_minutes: float = _setting(30.0, check=_between(0, 100_000), doc="next-response SLA")
    business_hours: str = _setting(
        "", check=_hours_spec, doc="e.g. mon-fri 09:00-17:00; sat 10:00-14:00 (empty: always)"
    )
    timezone: str = _setting("UTC", check=_timezone, doc="time zone of business_hours")
    out_of_hours_reply: str = _setting(
        "We are closed right now. We will answer as soon as we open.",
        doc="sent when a conversation is queued outside business hours",
    )
    direct_channels: str = _setting("", doc="comma-separated channels that go straight to the human queue")
    channel_teams: str = _setting("", doc="team per channel for queued threads, e.g. email=billing,sms=support")
    assign_interval: float = _setting(2.0, check=_between(0.05, 3600), doc="how often auto-assignment looks for work")
    requeue_on_shift_end: bool = _setting(True, doc="an agent ending a shift hands their open conversations back")


@dataclass(frozen=True)
class ConsoleSettings:
    session_idle_minutes: float = _setting(30.0, check=_between(1, 10_000), doc="idle time that ends a login")
    session_max_hours: float = _setting(12.0, check=_between(0.1, 1000), doc="longest login, however active")
    login_attempts: int = _setting(
        5, check=_between(1, 1000), doc="failed logins per name (x4 per address) before each further attempt waits"
    )
    login_delay_seconds: float = _setting(
        2.0,
        check=_between(0.1, 3600),
        doc="the first wait once the failed logins are used up; doubles with each failure",
    )
    login_max_delay_seconds: float = _setting(
        300.0, check=_between(1, 86400), doc="the longest wait between throttled login attempts"
    )
    login_window_seconds: int = _setting(
        3600,
        check=_between(1, 7 * 86400),
        doc="failed logins are forgotten this long after the last (and never before twice the longest wait)",
    )
    live_feed: str = _setting(
        "auto",
        check=_one_of("auto", "change_stream", "poll"),
        doc="how consoles learn of changes: auto = change streams on MongoDB, polling on the embedded store",
    )
    poll_interval: float = _setting(0.5, check=_between(0.05, 60), doc="polling period of the live feed, seconds")
    first_admin: bool = _setting(True, doc="create an admin (password printed once) when an account has no agents")
    first_admin_file: str = _setting(
        "var/first-admin.txt",
        doc="where the first admin's password is written (mode 0600) when `serve`'s output is not a terminal",
    )
    record_location: bool = _setting(False, doc="store the browser's location at shift start and stop")
    language: str = _setting("en", check=_one_of("en", "lv", "ru"), doc="default console language")


@dataclass(frozen=True)
class RetentionSettings:
    days: int = _setting(
        0,
        check=_between(0, 36_500),
        doc="delete messages older than this many days; 0: keep them (an admin can set it per account)",
    )
    interval_minutes: float = _setting(60.0, check=_between(0.01, 10_080), doc="how often the retention job runs")


@dataclass(frozen=True)
class DialogueSettings:
    folder: str = _setting(
        "config/dialogue", doc="forms, slots, rules and their questions (Rasa domain.yml and rules.yml); none: no forms"
    )
    action_endpoint: str = _setting(
        "", check=_url, doc="Rasa action server for custom actions, e.g. http://actions:5055/webhook; empty: none"
    )
    action_timeout: float = _setting(5.0, check=_between(0.1, 60), doc="seconds to wait for a custom action")
    clear_intent: float = _setting(
        0.6, check=_between(0, 1), doc="a message this sure of another intent leaves the form being filled"
    )


@dataclass(frozen=True)
class NluSettings:
    engine: str = _setting(
        "embedded",
        check=_one_of("embedded", "rasa", "off"),
        doc="`embedded` (built in), `rasa` (a remote Rasa server) or `off` (every conversation goes to a human)",
    )
    data: str = _setting("config/nlu", doc="training data: files or directories, comma-separated (Rasa YAML or JSONL)")
    responses: str = _setting("config/responses.yml", doc="what the bot answers, per intent and language")
    semantic: bool = _setting(True, doc="use the semantic tier (sentence embeddings); off: the lexical tier alone")
    auto_train: bool = _setting(
        True, doc="train and activate a model from `nlu.data` at start-up when the account has none"
    )
    reload_interval: float = _setting(
        5.0, check=_between(0.05, 3600), doc="how often a router process looks for a newly activated model, seconds"
    )
    ambiguity_margin: float = _setting(
        0.1, check=_between(0, 1), doc="top two intents closer than this (in probability) get a clarifying question"
    )
    target_rejection: float = _setting(
        0.01,
        check=_between(0, 0.5),
        doc="without out-of-scope training examples: the share of in-scope messages the threshold is set to "
        "reject (calibrated on cross-validated confidences); those go to the fallback or a human",
    )
    max_tokens: int = _setting(
        128,
        check=_between(16, 20_000),
        doc="the NLU reads at most this many tokens of a message (its start; the message is stored whole): "
        "the engine's cost grows with the text, about 2 ms a token on one core",
    )
    parse_budget: float = _setting(
        10.0,
        check=_between(0.01, 600),
        doc="seconds the NLU may take for one message; a message over it goes to a human (reason "
        "`nlu_over_budget`), never to the NLU again",
    )
    trainings: int = _setting(
        1,
        check=_between(1, 16),
        doc="trainings one router process runs at once (each keeps a core busy); more wait their turn",
    )
    rasa_url: str = _setting("", check=_url, doc='the Rasa server for `engine = "rasa"`, e.g. http://rasa:5005')
    rasa_token: str = _setting("", doc="the Rasa server's auth token, if it has one")
    rasa_timeout: float = _setting(3.0, check=_between(0.05, 60), doc="seconds to wait for Rasa before escalating")
    rasa_threshold: float = _setting(0.5, check=_between(0, 1), doc="Rasa confidence under this counts as out of scope")


def _channel_defaults() -> Mapping[str, Any]:
    return MappingProxyType({name: kind() for name, kind in registry.sections().items()})


@dataclass(frozen=True)
class Settings:
    server: ServerSettings = field(default_factory=ServerSettings)
    store: StoreSettings = field(default_factory=StoreSettings)
    account: AccountSettings = field(default_factory=AccountSettings)
    dispatch: DispatchSettings = field(default_factory=DispatchSettings)
    outbox: OutboxSettings = field(default_factory=OutboxSettings)
    campaigns: CampaignSettings = field(default_factory=CampaignSettings)
    # each channel's sections by name ([telegram], [twilio], ...), as the channel registry lists them:
    # a channel reads its own with ``settings.section(TelegramSettings)``
    channels: Mapping[str, Any] = field(default_factory=_channel_defaults, hash=False)
    api: ApiSettings = field(default_factory=ApiSettings)
    queue: QueueSettings = field(default_factory=QueueSettings)
    console: ConsoleSettings = field(default_factory=ConsoleSettings)
    retention: RetentionSettings = field(default_factory=RetentionSettings)
    security: SecuritySettings = field(default_factory=SecuritySettings)
    webhooks: WebhookSettings = field(default_factory=WebhookSettings)
    nlu: NluSettings = field(default_factory=NluSettings)
    dialogue: DialogueSettings = field(default_factory=DialogueSettings)
    egress: EgressSettings = field(default_factory=EgressSettings)

    def replace(self, section: str, **values: Any) -> Settings:
        """A copy with some keys of one section changed (validated like any other source)."""
        raw = {section: values}
        return _apply(self, raw, source="arguments")

    def section(self, kind: type[T]) -> T:
        """A channel's settings section by its type: ``settings.section(TelegramSettings)``."""
        for value in self.channels.values():
            if type(value) is kind:
                return value
        raise KeyError(f"no channel has a {kind.__name__} section")

    def named(self, section: str) -> Any:
        """A section by its name in the settings file (``"server"``, ``"telegram"``)."""
        return self.channels[section] if section in self.channels else getattr(self, section)

    def with_sections(self, sections: Mapping[str, Any]) -> Settings:
        """A copy with whole sections (section name -> a section's dataclass) swapped in."""
        channels = {name: value for name, value in sections.items() if name in self.channels}
        others = {name: value for name, value in sections.items() if name not in self.channels}
        if channels:
            others["channels"] = MappingProxyType({**self.channels, **channels})
        return dataclasses.replace(self, **others)


_SECTION_TYPES: dict[str, type[Any]] = {
    "server": ServerSettings,
    "store": StoreSettings,
    "account": AccountSettings,
    "dispatch": DispatchSettings,
    "outbox": OutboxSettings,
    "campaigns": CampaignSettings,
    **registry.sections(),  # each channel's sections, from its package
    "api": ApiSettings,
    "queue": QueueSettings,
    "console": ConsoleSettings,
    "retention": RetentionSettings,
    "security": SecuritySettings,
    "webhooks": WebhookSettings,
    "nlu": NluSettings,
    "dialogue": DialogueSettings,
    "egress": EgressSettings,
}


def env_names() -> dict[str, tuple[str, str]]:
    """Every accepted ``OMNIROUTER_*`` variable -> (section, key)."""
    names: dict[str, tuple[str, str]] = {}
    for section, kind in _SECTION_TYPES.items():
        for f in dataclasses.fields(kind):
            names[f"{ENV_PREFIX}{section.upper()}_{f.name.upper()}"] = (section, f.name)
            if f.metadata.get("alias"):
                names[ENV_PREFIX + f.metadata["alias"]] = (section, f.name)
    return names


def load_settings(path: Path | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Defaults, then the TOML file, then the environment. Raises ``SettingsError``."""
    env = os.environ if env is None else env
    settings = Settings()
    if path is None and DEFAULT_CONFIG.exists():
        path = DEFAULT_CONFIG
    if path is not None:
        settings = _apply(settings, read_toml(path), source=str(path))
    return _apply(settings, _env_overrides(env), source="environment")


def _env_overrides(env: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    known = env_names()
    raw: dict[str, dict[str, Any]] = {}
    for name, value in env.items():
        if not name.startswith(ENV_PREFIX):
            continue
        if name not in known:
            hint = difflib.get_close_matches(name, known, n=1)
            suffix = f" (did you mean {hint[0]}?)" if hint else ""
            raise SettingsError(f"unknown environment variable {name}{suffix}")
        section, key = known[name]
        raw.setdefault(section, {})[key] = EnvValue(name, value)
    return raw


def _apply(settings: Settings, raw: Mapping[str, Any], source: str) -> Settings:
    changed: dict[str, Any] = {}
    for section, values in raw.items():
        kind = _SECTION_TYPES.get(section)
        if not isinstance(values, Mapping):
            homes = [name for name, k in _SECTION_TYPES.items() if section in {f.name for f in dataclasses.fields(k)}]
            where = f"; put it under [{homes[0]}]" if homes else ""
            raise SettingsError(f"setting {section} in {source} is outside any [section]{where}")
        if kind is None:
            raise SettingsError(f"unknown settings section [{section}] in {source}")
        fields = {f.name: f for f in dataclasses.fields(kind)}
        updates: dict[str, Any] = {}
        for key, value in values.items():
            f = fields.get(key)
            if f is None:
                hint = difflib.get_close_matches(key, fields, n=1)
                suffix = f" (did you mean {hint[0]}?)" if hint else ""
                raise SettingsError(f"unknown setting {section}.{key} in {source}{suffix}")
            where = (
                f"{section}.{key} (from {value.name})"
                if isinstance(value, EnvValue)
                else f"{section}.{key} (in {source})"
            )
            updates[key] = convert(value, f, where)
        changed[section] = dataclasses.replace(settings.named(section), **updates)
    return settings.with_sections(changed)


def describe() -> list[tuple[str, str, Any, str]]:
    """(key, environment variable, default, doc) for every setting: the configuration reference
    (``docs/configuration.md``, written by ``python -m bot.settings_reference``)."""
    rows = []
    for section, kind in _SECTION_TYPES.items():
        for f in dataclasses.fields(kind):
            alias = f.metadata.get("alias")
            env = ENV_PREFIX + (alias or f"{section.upper()}_{f.name.upper()}")
            rows.append((f"{section}.{f.name}", env, f.default, f.metadata.get("doc", "")))
    return rows
