"""Settings: defaults, file, environment, and one clear line for every mistake."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from bot.setting_fields import SettingsError
from bot.settings import describe, env_names, load_settings


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "omnirouter.toml"
    path.write_text(text)
    return path


def test_defaults_without_file_or_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings(env={})
    assert settings.server.port == 8080 and settings.server.host == "127.0.0.1"
    assert settings.store.mongodb_uri == "" and settings.store.embedded_dir == "var/store"


def test_the_default_file_is_read_when_present(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "omnirouter.toml").write_text("[server]\nport = 9000\n")
    assert load_settings(env={}).server.port == 9000


def test_file_then_environment(tmp_path: Path) -> None:
    path = write(tmp_path, '[server]\nport = 9000\nlog_format = "json"\n[outbox]\nbase_delay = 2\n')
    settings = load_settings(
        path,
        env={
            "OMNIROUTER_PORT": "9100",
            "OMNIROUTER_OUTBOX_MAX_ATTEMPTS": "3",
            "OMNIROUTER_MONGODB_URI": "mongodb://db:27017",
            "HOME": "/x",
        },
    )
    assert settings.server.port == 9100 and settings.server.log_format == "json"
    assert settings.outbox.base_delay == 2.0 and settings.outbox.max_attempts == 3
    assert settings.store.mongodb_uri == "mongodb://db:27017"


def test_the_example_config_is_valid() -> None:
    example = Path(__file__).resolve().parent.parent / "config" / "omnirouter.example.toml"
    assert load_settings(example, env={}).server.port == 8080


def test_the_example_config_names_every_setting() -> None:
    """An operator reads the example to learn what can be set: each setting is there with its
    default (WhatsApp's templates, a table of tables, as a commented example)."""
    text = (Path(__file__).resolve().parent.parent / "config" / "omnirouter.example.toml").read_text()
    example = tomllib.loads(text)
    keys = [key.split(".") for key, _, _, _ in describe()]
    missing = [f"{section}.{name}" for section, name in keys if name not in example.get(section, {})]
    assert missing == ["whatsapp.templates"] and "# [whatsapp.templates." in text


@pytest.mark.parametrize(
    ("text", "env", "message"),
    [
        ("[server]\nport = 70000\n", {}, "bad setting server.port (in {path}): must be from 1 to 65535, got 70000"),
        ('[server]\nport = "80"\n', {}, "bad setting server.port (in {path}): expected an integer, got '80'"),
        (
            "",
            {"OMNIROUTER_PORT": "abc"},
            "bad setting server.port (from OMNIROUTER_PORT): expected an integer, got 'abc'",
        ),
        ("[server]\nprot = 1\n", {}, "unknown setting server.prot in {path} (did you mean port?)"),
        ("[serve]\nport = 1\n", {}, "unknown settings section [serve] in {path}"),
        ("port = 1\n", {}, "setting port in {path} is outside any [section]; put it under [server]"),
        ("", {"OMNIROUTER_PROT": "1"}, "unknown environment variable OMNIROUTER_PROT (did you mean OMNIROUTER_PORT?)"),
        (
            "",
            {"OMNIROUTER_MONGODB_URI": "localhost"},
            "bad setting store.mongodb_uri (from OMNIROUTER_MONGODB_URI): must start with mongodb://",
        ),
        (
            '[server]\nlog_format = "xml"\n',
            {},
            "bad setting server.log_format (in {path}): must be one of text, json, got 'xml'",
        ),
        ("[outbox]\nbase_delay = true\n", {}, "bad setting outbox.base_delay (in {path}): expected a number, got True"),
        ("[server\n", {}, "config file {path} is not valid TOML"),
    ],
)
def test_every_mistake_is_one_clear_line(tmp_path: Path, text: str, env: dict[str, str], message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(SettingsError) as caught:
        load_settings(path, env=env)
    assert str(caught.value).startswith(message.format(path=path))
    assert "\n" not in str(caught.value)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"config file .*nope.toml not found"):
        load_settings(tmp_path / "nope.toml", env={})


def test_every_setting_has_an_environment_name() -> None:
    names = env_names()
    for key, env, _, _ in describe():
        assert env in names and ".".join(names[env]) == key


def test_the_configuration_reference_documents_every_setting() -> None:
    reference = (Path(__file__).resolve().parent.parent / "docs" / "configuration.md").read_text()
    for key, env, _, _ in describe():
        assert f"| `{key}` | `{env}` |" in reference, f"docs/configuration.md lacks {key}"
