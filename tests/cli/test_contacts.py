"""`omnirouter contact export|erase` as users run it: a real process against the test's store."""

from __future__ import annotations

import asyncio
import json
import os
import stat
from pathlib import Path

from aiohttp.test_utils import TestClient

from bot.keys import STORE
from bot.settings import Settings
from tests import factories
from tests.cli.test_serve import OMNIROUTER
from tests.router.test_queue import customer_writes


def _env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMNIROUTER_")}
    return {
        **env,
        "OMNIROUTER_MONGODB_URI": settings.store.mongodb_uri,
        "OMNIROUTER_STORE_DATABASE": settings.store.database,
    }


async def run(
    settings: Settings, *args: str, stdin: int | None = asyncio.subprocess.DEVNULL, typed: str | None = None
) -> tuple[int, str, str]:
    """Run the command; with ``typed``, standard input is a terminal the text is typed into."""
    master = None
    if typed is not None:
        master, stdin = os.openpty()
    process = await asyncio.create_subprocess_exec(
        OMNIROUTER,
        *args,
        stdin=stdin,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=_env(settings),
    )
    if master is not None:
        assert stdin is not None
        os.close(stdin)
        os.write(master, typed.encode() + b"\n")  # type: ignore[union-attr]
    out, err = await asyncio.wait_for(process.communicate(), 60)
    if master is not None:
        os.close(master)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_export_writes_one_private_json_document(client: TestClient, settings: Settings, tmp_path: Path) -> None:
    thread_id = await customer_writes(client.server.app, "cli-visitor", "export me please")
    thread = await client.server.app[STORE].threads.get_thread(thread_id)
    assert thread is not None
    target = tmp_path / "anna.json"
    code, out, err = await run(settings, "contact", "export", "webchat:cli-visitor", "--out", str(target))
    assert code == 0, err
    assert err.startswith(f"exported contact {thread.contact_id} (") and str(target) in err and out == ""
    document = json.loads(target.read_text())
    assert document["contact_id"] == thread.contact_id and document["identities"] == ["webchat:cli-visitor"]
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    code, out, _ = await run(settings, "contact", "export", thread.contact_id)  # to standard output
    assert code == 0 and json.loads(out)["data"]["messages"][0]["text"] == "export me please"
    entries = await factories.audit(client.server.app[STORE], action="contact.export")
    assert [(e.actor, e.target) for e in entries] == [("cli", thread.contact_id)] * 2


async def test_erase_asks_unless_told_yes(client: TestClient, settings: Settings) -> None:
    store = client.server.app[STORE]
    thread_id = await customer_writes(client.server.app, "cli-erase", "erase me")
    thread = await store.threads.get_thread(thread_id)
    assert thread is not None
    code, _, err = await run(settings, "contact", "erase", thread.contact_id)
    assert code == 2 and "refusing to erase without --yes" in err
    code, out, err = await run(settings, "contact", "erase", thread.contact_id, typed="no")
    assert code == 1 and "not confirmed: nothing was erased" in err and "1 conversations, 2 messages" in out
    assert await store.contacts.get_contact(thread.contact_id) is not None
    code, out, err = await run(settings, "contact", "erase", thread.contact_id, typed=thread.contact_id)
    assert code == 0, err
    assert f"erased contact {thread.contact_id}:" in out and "receipt era_" in out
    assert await store.contacts.get_contact(thread.contact_id) is None and await factories.messages(store) == []


async def test_erase_with_yes_and_clear_errors(client: TestClient, settings: Settings) -> None:
    store = client.server.app[STORE]
    thread_id = await customer_writes(client.server.app, "cli-yes", "bye")
    thread = await store.threads.get_thread(thread_id)
    assert thread is not None
    code, out, err = await run(settings, "contact", "erase", "cli-yes", "--yes")
    assert code == 0 and "records removed or anonymised" in out, err
    code, _, err = await run(settings, "contact", "erase", "cli-yes", "--yes")
    assert code == 2 and err.strip() == "omnirouter: no contact 'cli-yes' in account 'default'"
    code, _, err = await run(settings, "contact", "export", "x", "--account", "nope")
    assert code == 2 and err.strip() == "omnirouter: no account 'nope'"
    code, _, err = await run(settings, "contact", "export", thread.contact_id, "--out", "/")
    assert code == 2 and "is a directory" in err
