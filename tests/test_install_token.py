"""The install token: without it no request is the superadmin, loopback included; made on the first
start, sealed in the store, written once to a 0600 file (again when deleted, never over another
token: only a rotation replaces it), the same for every router on the store, and replaced everywhere
by a rotation."""

from __future__ import annotations

import dataclasses
import logging
import stat
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.install_token import REFRESH_SECONDS, SECRET_NAME, rotate
from bot.keys import STORE
from bot.settings import Settings
from tests.conftest import anonymous, make_settings, raw_database_of
from tests.router.test_inbound import wait_for


def tokenless(embedded: Any, db_name: str, token_file: Path) -> Settings:
    """Settings of an install without ``api.token``: the router makes its own token."""
    return make_settings(embedded.uri, db_name, api={"token": "", "token_file": str(token_file)})


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def logged(caplog: pytest.LogCaptureFixture) -> dict[str, dict[str, Any]]:
    """Each event logged so far with its fields (the last of each name)."""
    return {r.getMessage(): getattr(r, "omnirouter_fields", {}) for r in caplog.records}


async def status(session: aiohttp.ClientSession, path: str, token: str | None = None) -> int:
    async with session.get(path, headers=bearer(token) if token else None) as response:
        return response.status


async def test_loopback_without_the_token_is_refused_and_the_token_makes_the_superadmin(
    embedded: Any, db_name: str, start_client: Any, tmp_path: Path
) -> None:
    client = await start_client(tokenless(embedded, db_name, tmp_path / "api.token"))
    token = (tmp_path / "api.token").read_text().strip()
    async with anonymous(client) as local:  # 127.0.0.1, no proxy headers: what counted as superadmin before
        for headers in ({}, bearer(token[:-2] + "xx"), {"Cookie": "omnirouter_session=x"}):
            refused = await local.post("/api/accounts", json={"id": "shop2", "name": "Second"}, headers=headers)
            assert refused.status == 401 and (await refused.json())["error"] == "unauthorized"
        assert await client.server.app[STORE].accounts.get_account("shop2") is None
        made = await local.post("/api/accounts", json={"id": "shop2", "name": "Second"}, headers=bearer(token))
        assert made.status == 201
        listed = await (await local.get("/api/accounts", headers=bearer(token))).json()
        assert [a["id"] for a in listed["items"]] == ["default", "shop2"]  # every account: the superadmin


async def test_the_token_is_sealed_in_the_store_and_written_once_to_a_0600_file(
    embedded: Any, db_name: str, start_client: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="omnirouter")
    path = tmp_path / "var" / "api.token"
    first = await start_client(tokenless(embedded, db_name, path))
    token = path.read_text().strip()
    assert token.startswith("omi_") and stat.S_IMODE(path.stat().st_mode) == 0o600
    raw = await raw_database_of(first.server.app[STORE]).secrets.find_one({"_id": SECRET_NAME})  # at rest
    assert raw["value"].startswith("sealed:v2:") and token not in str(raw)
    assert logged(caplog)["api.token_file_created"] == {"path": str(path), "mode": "0600"}

    written = path.stat()
    second = await start_client(tokenless(embedded, db_name, path))  # a restart, or a second process
    assert (path.stat().st_ino, path.stat().st_mtime_ns) == (written.st_ino, written.st_mtime_ns)
    async with anonymous(second) as session:
        assert await status(session, "/api/accounts", token) == 200

    path.unlink()  # deleted by someone: the next start writes it again from the store
    await start_client(tokenless(embedded, db_name, path))
    assert path.read_text().strip() == token and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert logged(caplog)["api.token_file_written_again"]["path"] == str(path)

    elsewhere = tmp_path / "other-host" / "api.token"  # a router on another host, same store
    await start_client(tokenless(embedded, db_name, elsewhere))
    assert elsewhere.read_text().strip() == token
    assert token not in str(logged(caplog)) + caplog.text  # where, never what


async def test_a_file_with_another_token_is_left_alone_and_one_others_could_read_is_closed_with_a_warning(
    embedded: Any, db_name: str, start_client: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A router writes the file only when it is missing; one holding another token (rotated on
    another host) stays as it is, and one others could read is closed with advice to rotate: the
    token in it was exposed."""
    caplog.set_level(logging.INFO, logger="omnirouter")
    path = tmp_path / "api.token"
    path.write_text("omi_left-by-another-install\n")
    client = await start_client(tokenless(embedded, db_name, path))
    assert path.read_text() == "omi_left-by-another-install\n" and stat.S_IMODE(path.stat().st_mode) == 0o600
    differs = logged(caplog)["api.token_file_differs"]
    assert differs["path"] == str(path) and "omnirouter api-token --rotate" in differs["advice"]

    token = await client.server.app[STORE].secrets.read_sealed_secret(SECRET_NAME)
    path.write_text(token + "\n")
    path.chmod(0o644)
    caplog.clear()
    await start_client(tokenless(embedded, db_name, path))
    assert path.read_text().strip() == token and stat.S_IMODE(path.stat().st_mode) == 0o600
    exposed = [r for r in caplog.records if r.getMessage() == "api.token_file_exposed"]
    assert [r.levelno for r in exposed] == [logging.WARNING]
    advice = logged(caplog)["api.token_file_exposed"]["advice"]
    assert "readable by other users" in advice and "omnirouter api-token --rotate" in advice
    assert token not in str(logged(caplog)) + caplog.text


async def test_a_router_never_writes_over_the_file_a_rotation_made(
    embedded: Any, db_name: str, start_client: Any, tmp_path: Path
) -> None:
    """Only ``api-token --rotate`` replaces the file: a running router that meets a new token in
    the store takes it, and leaves the file alone (it could hold a token newer than the one the
    router read)."""
    path = tmp_path / "api.token"
    settings = tokenless(embedded, db_name, path)
    client = await start_client(settings)
    before = path.stat()
    rotated = tmp_path / "elsewhere" / "api.token"  # the rotation ran on another host, or a moment ago here
    await rotate(dataclasses.replace(settings.api, token_file=str(rotated)), client.server.app[STORE])
    new = rotated.read_text().strip()
    async with anonymous(client) as session:

        async def new_accepted() -> bool:
            return await status(session, "/api/outbox", new) == 200

        await wait_for(new_accepted, timeout=REFRESH_SECONDS + 3)
    assert (path.stat().st_ino, path.stat().st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert path.read_text().strip() != new


async def test_api_token_in_the_settings_wins_and_no_file_is_written(
    embedded: Any, db_name: str, start_client: Any, tmp_path: Path
) -> None:
    generated = tmp_path / "api.token"
    await start_client(tokenless(embedded, db_name, generated))
    stored = generated.read_text().strip()
    unused = tmp_path / "unused.token"
    client = await start_client(
        make_settings(embedded.uri, db_name, api={"token": "set-by-operator", "token_file": str(unused)})
    )
    async with anonymous(client) as session:
        assert await status(session, "/api/outbox", "set-by-operator") == 200
        assert await status(session, "/api/outbox", stored) == 401
    assert not unused.exists()


async def test_a_rotated_token_replaces_the_old_one_in_every_process_within_seconds(
    embedded: Any, db_name: str, start_client: Any, tmp_path: Path
) -> None:
    path = tmp_path / "api.token"
    settings = tokenless(embedded, db_name, path)
    first, second = await start_client(settings), await start_client(settings)
    old = path.read_text().strip()
    await rotate(settings.api, first.server.app[STORE])
    new = path.read_text().strip()
    assert new != old and stat.S_IMODE(path.stat().st_mode) == 0o600
    for client in (first, second):
        async with anonymous(client) as session:

            async def old_refused(session: aiohttp.ClientSession = session) -> bool:
                return await status(session, "/api/outbox", old) == 401

            await wait_for(old_refused, timeout=REFRESH_SECONDS + 3)
            assert await status(session, "/api/outbox", new) == 200
