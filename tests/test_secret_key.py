"""The key that seals secrets at rest: made once on a fresh install, checked against the store at
every start, and a clear one-line stop when it is missing or wrong (never a second key that
would leave the sealed secrets unreadable)."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest

from bot.secret_key import SecretKeyError, open_sealer
from bot.settings import SecuritySettings
from conversations.embedded import free_port
from conversations.models import utcnow
from conversations.repositories import Repositories
from conversations.sealing import Sealer, SealingError, generate_key, parse_key
from tests.cli.test_serve import run, serve_and_stop
from tests.conftest import raw_database_of


async def test_a_fresh_install_makes_a_key_file_and_uses_it_from_then_on(store: Repositories, tmp_path: Path) -> None:
    path = tmp_path / "var" / "secret.key"
    sealer = await open_sealer(SecuritySettings(secret_key_file=str(path)), store)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert Sealer(parse_key(path.read_text())).key_id == sealer.key_id
    await store.accounts.ensure_account("shop", "Shop", utcnow())
    await store.accounts.set_account_channel("shop", "telegram", {"token": "123:secret-token", "webhook_secret": "s"})
    again = await open_sealer(SecuritySettings(secret_key_file=str(path)), store)  # the next start
    assert again.key_id == sealer.key_id
    account = await store.accounts.get_account("shop")
    assert account is not None and account.channels["telegram"]["token"] == "123:secret-token"


async def test_a_missing_or_wrong_key_stops_start_up_with_one_line(store: Repositories, tmp_path: Path) -> None:
    path = tmp_path / "secret.key"
    first = await open_sealer(SecuritySettings(secret_key_file=str(path)), store)
    path.unlink()
    with pytest.raises(SecretKeyError) as missing:
        await open_sealer(SecuritySettings(secret_key_file=str(path)), store)
    assert f"sealed with key {first.key_id}, but there is no key" in str(missing.value)
    assert not path.exists()  # no new key was made over sealed secrets
    other = generate_key()
    with pytest.raises(SecretKeyError) as wrong:
        await open_sealer(SecuritySettings(secret_key=other), store)
    assert f"(id {first.key_id})" in str(wrong.value) and "security.secret_key" in str(wrong.value)
    path.write_text("not a key\n")
    with pytest.raises(SecretKeyError) as garbled:
        await open_sealer(SecuritySettings(secret_key_file=str(path)), store)
    assert "64 hex characters" in str(garbled.value)


async def test_secrets_stored_in_clear_before_are_sealed_at_start_up(store: Repositories, tmp_path: Path) -> None:
    raw = raw_database_of(store)  # an account as an earlier release stored it: secrets in clear
    await raw.accounts.insert_one(
        {
            "_id": "old",
            "name": "Old",
            "created_at": 0,
            "channels": {
                "whatsapp": {
                    "phone_number_id": "1065",
                    "access_token": "EAAG-plain",
                    "app_secret": "plain-app-secret",
                    "verify_token": "v",
                }
            },
        }
    )
    await open_sealer(SecuritySettings(secret_key=generate_key()), store)
    stored = await raw.accounts.find_one({"_id": "old"})
    assert "EAAG-plain" not in str(stored) and stored["channels"]["whatsapp"]["phone_number_id"] == "1065"
    account = await store.accounts.get_account("old")
    assert account is not None and account.channels["whatsapp"]["app_secret"] == "plain-app-secret"


def test_a_sealed_value_opens_only_with_its_key_and_unaltered() -> None:
    sealer, field = Sealer(parse_key(generate_key())), "channels.telegram.token"
    sealed = sealer.seal("123:token", "shop", field)
    assert sealed.startswith(f"sealed:v2:{sealer.key_id}:") and "123:token" not in sealed
    assert sealer.unseal(sealed, "shop", field) == "123:token"
    assert sealer.seal("123:token", "shop", field) != sealed  # a fresh nonce each time
    with pytest.raises(SealingError):
        Sealer(parse_key(generate_key())).unseal(sealed, "shop", field)
    tampered = sealed[:-4] + ("AAAA" if not sealed.endswith("AAAA") else "BBBB")
    with pytest.raises(SealingError):
        sealer.unseal(tampered, "shop", field)


async def test_serve_keeps_its_key_under_var_and_refuses_another(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMNIROUTER_")}
    assert "first run" in await serve_and_stop(tmp_path, env)
    key_file = tmp_path / "var" / "secret.key"
    assert key_file.exists() and stat.S_IMODE(key_file.stat().st_mode) == 0o600

    wrong: dict[str, Any] = {**env, "OMNIROUTER_SECRET_KEY": generate_key()}
    code, out, err = await run("serve", "--port", str(free_port()), cwd=tmp_path, env=wrong)
    last = err.splitlines()[-1]  # after the store's start-up log line: one line saying what is wrong
    assert code == 2 and "Traceback" not in err and out == ""
    assert last.startswith("omnirouter: the key from security.secret_key") and "is not the key" in last
    key_file.rename(tmp_path / "elsewhere.key")
    code, _, err = await run("serve", "--port", str(free_port()), cwd=tmp_path, env=env)
    assert code == 2 and "there is no key" in err and "var/secret.key" in err
    assert not key_file.exists()
