"""`omnirouter action-secret NAME` as a user runs it: the value from standard input, sealed in the
store; a missing value or a bad name is refused in one line."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bot.router.dialogue.http_actions import action_secret
from conversations.embedded import EmbeddedMongo
from conversations.models import utcnow
from conversations.repositories import Repositories
from tests.cli.test_serve import OMNIROUTER
from tests.conftest import raw_database_of


async def secret_command(cwd: Path, name: str, stdin: bytes, *more: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        OMNIROUTER, "action-secret", name, *more, cwd=cwd,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await asyncio.wait_for(process.communicate(stdin), 60)
    assert process.returncode is not None
    return process.returncode, err.decode().strip()


async def test_the_secret_is_stored_sealed(tmp_path: Path) -> None:
    code, said = await secret_command(tmp_path, "shop", b"s3cret-value\n")
    assert code == 0 and said.splitlines()[-1] == "stored shop (sealed)"  # nothing after it (no pending-task noise)
    assert await secret_command(tmp_path, "shop", b"x\n", "--account", "nosuch") == (2, "omnirouter: no account nosuch")
    server = EmbeddedMongo(tmp_path / "var" / "store")
    await server.start()
    store = Repositories.connect(server.uri, "omnirouter")
    try:
        doc = await raw_database_of(store).secrets.find_one({"_id": action_secret("shop")})
        assert doc is not None and "s3cret-value" not in str(doc)
        await store.accounts.ensure_account("acme", "Acme", utcnow())
    finally:
        await store.close()
        await server.stop()
    # an account's own secret, for the content its admins publish: beside the install's, not over it
    code, said = await secret_command(tmp_path, "shop", b"acme-value\n", "--account", "acme")
    assert code == 0 and said.splitlines()[-1] == "stored shop for account acme (sealed)"
    await server.start()
    store = Repositories.connect(server.uri, "omnirouter")
    try:
        stored = {
            doc["_id"] async for doc in raw_database_of(store).secrets.find({"_id": {"$regex": "^action-secret:"}})
        }
        assert stored == {action_secret("shop"), action_secret("shop", "acme")}
    finally:
        await store.close()
        await server.stop()


async def test_no_value_or_a_bad_name_is_refused(tmp_path: Path) -> None:
    assert await secret_command(tmp_path, "shop", b"") == (2, "omnirouter: no value on standard input")
    assert await secret_command(tmp_path, "bad name", b"x\n") == (
        2,
        "omnirouter: NAME is 1-64 letters, digits, _ and -",
    )
