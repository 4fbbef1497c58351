"""The key that seals secrets in the store, found (or made) at start-up.

``security.secret_key`` wins; otherwise the key file (``security.secret_key_file``, ``var/secret.key``
by default) is read. A fresh install — no key anywhere and nothing sealed in the store yet — gets a
new key file (mode 0600), so ``make run`` stays one command. The store remembers which key sealed
its secrets (its id and a sealed sample): a router started without that key, or with another one,
stops with one line saying so, before it could write secrets nobody can read back.

A store an earlier release wrote (secrets in clear, or in the first sealed format) is upgraded once,
at the first start of this release, and then says so (``format`` on its sealing check): from then
on a plain value where a sealed one belongs is refused at every start, never sealed.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from bot.logs import log_event
from bot.settings import SecuritySettings
from conversations.private_files import write_private
from conversations.repositories import Repositories
from conversations.sealing import FORMAT, INSTALL, V1_PREFIX, Sealer, SealingError, generate_key, parse_key

log = logging.getLogger("omnirouter.security")
_SAMPLE = "omnirouter sealing check"
_SAMPLE_FIELD = "secrets.sealing-key-check.sample"


class SecretKeyError(Exception):
    """The key is missing, unreadable or not the one the store's secrets were sealed with."""


async def open_sealer(settings: SecuritySettings, store: Repositories) -> Sealer:
    """The install's sealer, checked against the store (and recorded there on first use), put to
    use by ``store``; a store not yet upgraded to the current format of secrets is upgraded now."""
    check = await store.secrets.sealing_check()
    path = Path(settings.secret_key_file)
    if settings.secret_key:
        key, source = parse_key(settings.secret_key), "security.secret_key"
    else:
        text = await asyncio.to_thread(_read_or_create, path, check is None)
        if text is None:
            raise SecretKeyError(
                f"the store holds secrets sealed with key {check['key_id'] if check else '?'}, but there is no key: "
                f"set security.secret_key (OMNIROUTER_SECRET_KEY) or put the key file back at {path}"
            )
        try:
            key, source = parse_key(text), str(path)
        except SealingError as exc:
            raise SecretKeyError(f"{path}: {exc}") from None
    sealer = Sealer(key)
    if check is None:
        check = await store.secrets.save_sealing_check(sealer.key_id, sealer.seal(_SAMPLE, INSTALL, _SAMPLE_FIELD))
    if check.get("key_id") != sealer.key_id:
        raise SecretKeyError(
            f"the key from {source} (id {sealer.key_id}) is not the key the store's secrets were sealed with "
            f"(id {check.get('key_id')}): use that key, or every channel token would be unreadable"
        )
    upgrading = check.get("format") != FORMAT
    try:
        await _check_sample(sealer, store, check.get("sample"), upgrading)
    except SealingError as exc:
        raise SecretKeyError(f"the key from {source} does not open the store's secrets: {exc}") from None
    store.client.use_sealer(sealer)
    sealed = await _upgrade(store) if upgrading else 0
    log_event(log, "security.key_ready", key_id=sealer.key_id, source=source, sealed_now=sealed)
    return sealer


async def _upgrade(store: Repositories) -> int:
    """The once-per-store upgrade of secrets an earlier release stored; how many records changed."""
    sealed, problems = await store.secrets.seal_plain_secrets()
    for problem in problems:
        log_event(log, "security.secret_not_upgraded", logging.WARNING, error=problem)
    await store.secrets.record_secrets_format()
    log_event(log, "security.secrets_upgraded", sealed_now=sealed, not_upgraded=len(problems))
    return sealed


async def _check_sample(sealer: Sealer, store: Repositories, sample: object, upgrading: bool) -> None:
    """The sealed sample opens to what was sealed (one in the first format is resealed while the
    store is upgraded)."""
    if upgrading and isinstance(sample, str) and sample.startswith(V1_PREFIX):
        upgraded = sealer.upgrade(sample, INSTALL, _SAMPLE_FIELD)
        assert upgraded is not None
        await store.secrets.replace_sealing_sample(sample, upgraded)
        sample = upgraded
    if sealer.unseal(sample, INSTALL, _SAMPLE_FIELD) != _SAMPLE:
        raise SealingError("the sealing check holds another text")


def _read_or_create(path: Path, may_create: bool) -> str | None:
    """The key file's text; a new key file when there is none and ``may_create``."""
    try:
        return path.read_text()
    except FileNotFoundError:
        if not may_create:
            return None
    except OSError as exc:
        raise SecretKeyError(f"cannot read the key file {path}: {exc.strerror}") from None
    key = generate_key()
    try:
        write_private(path, key + "\n", replace=False)
    except FileExistsError:  # another process made it a moment ago: use theirs
        return path.read_text()
    except OSError as exc:
        raise SecretKeyError(f"cannot create the key file {path}: {exc.strerror}") from None
    log_event(log, "security.key_created", logging.WARNING, path=str(path))
    return key
