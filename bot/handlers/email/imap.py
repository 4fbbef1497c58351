"""Reading a mailbox over IMAP (``aioimaplib``): poll for unseen mail, wait with IDLE between.

A mail is fetched with ``BODY.PEEK[]`` (which leaves it unseen), handed to the router, and marked
``\\Seen`` only once the router has recorded it. If the store is down, the mail stays unseen and
the next poll takes it again; recording is idempotent (the Message-ID is the dedup key), so two
router processes reading one mailbox record each mail once. A mail too large, or one without a
sender, is skipped (logged once per process) and left unseen for a human to look at. Too large is
told by the size the server announces and by what it sends: at most ``email.max_message_bytes``
and one more byte is asked for (a partial fetch), and a server that sends more anyway loses the
connection there.

An account's mailbox inbox is read through the ``email`` egress guard: the server's name is resolved
and every address checked once per connection, and the reader connects to a checked address, each
in turn until one answers (TLS still checks the server's certificate against its name).
"""

from __future__ import annotations

import asyncio
import logging
import re
import ssl
from collections.abc import Awaitable, Callable, Sequence

from aioimaplib import IMAP4, STOP_WAIT_SERVER_PUSH, IMAP4ClientProtocol, Response

from bot.handlers.email.settings import EmailSettings
from bot.handlers.kit.egress import Egress
from bot.handlers.kit.protocol import MalformedPayload
from bot.logs import log_event
from bot.tasks import pause, raise_if_cancelled, wait_set
from conversations.errors import StoreUnavailable

log = logging.getLogger("omnirouter.handlers.email.imap")

Ingest = Callable[[bytes, Sequence[str]], Awaitable[object]]
# unseen mails asked about in one command: the answer to ~1,000 at once overflows aioimaplib's
# (recursive) parser, and ~11,000 UIDs overflow Dovecot's 64 KiB command line
_BATCH = 200
# what a mail's FETCH answer may bring beside the mail: its own lines, the tagged OK, and untagged
# news the server may slip in between (flags, EXISTS)
_FETCH_FRAMING = 64 * 1024
_SIZE = re.compile(rb"UID (\d+) RFC822\.SIZE (\d+)|RFC822\.SIZE (\d+) UID (\d+)")


class ImapError(Exception):
    """The IMAP server refused something (login, folder, command)."""


def _ok(response: Response, what: str) -> Response:
    if response.result != "OK":
        detail = b" ".join(line for line in response.lines if isinstance(line, bytes))[:200]
        raise ImapError(f"{what} failed: {detail.decode('utf-8', 'replace')}")
    return response


class _BoundedProtocol(IMAP4ClientProtocol):  # type: ignore[misc]  # aioimaplib is untyped
    """aioimaplib's protocol, which drops the connection when the answer to a command brings more
    than the reader expects (``expect_at_most``): a server may send a mail larger than it announced,
    or ignore a partial fetch's bound, and all of it would be held in memory."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, conn_lost_cb: Callable[[Exception | None], None] | None
    ) -> None:
        super().__init__(loop, conn_lost_cb)
        self._allowed: int | None = None
        self._received = 0
        self.overflowed = asyncio.Event()

    def expect_at_most(self, size: int | None) -> None:
        """Bytes the next answer may bring (``None``: no bound)."""
        self._allowed, self._received = size, 0

    def data_received(self, d: bytes) -> None:
        if self._allowed is not None:
            self._received += len(d)
            if self._received > self._allowed:
                self._allowed = None
                self.overflowed.set()
                if self.transport is not None:
                    self.transport.close()
                return
        super().data_received(d)


class _Imap(IMAP4):  # type: ignore[misc]  # aioimaplib is untyped
    """An IMAP client on a ``_BoundedProtocol``; through ``guard`` (an account's mailbox) it connects
    to a checked address of ``host``, each in turn until one answers (TLS, when given a context,
    still verifies the certificate against ``host``)."""

    def __init__(
        self, host: str, port: int, ssl_context: ssl.SSLContext | None, guard: Egress | None, timeout: float = 30
    ) -> None:
        self._guard = guard
        super().__init__(host, port, timeout=timeout, ssl_context=ssl_context)

    def create_client(
        self,
        host: str,
        port: int,
        loop: asyncio.AbstractEventLoop | None,
        conn_lost_cb: Callable[[Exception | None], None] | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        running = loop if loop is not None else asyncio.get_running_loop()
        self.protocol = _BoundedProtocol(running, conn_lost_cb)
        self._client_task = running.create_task(self._open(running, host, port, ssl_context))

    async def _open(
        self, loop: asyncio.AbstractEventLoop, host: str, port: int, ssl_context: ssl.SSLContext | None
    ) -> object:
        if self._guard is None:
            return await loop.create_connection(lambda: self.protocol, host, port, ssl=ssl_context)
        sock = await self._guard.connect(host, port)
        server_hostname = host if ssl_context is not None else None
        return await loop.create_connection(
            lambda: self.protocol, sock=sock, ssl=ssl_context, server_hostname=server_hostname
        )


class MailboxReader:
    """One mailbox folder, read until stopped; reconnects with backoff when the link drops.
    ``guard``: the egress guard its server must pass (an account's inbox), ``None`` for the
    install's own mailbox."""

    def __init__(self, settings: EmailSettings, ingest: Ingest, guard: Egress | None = None) -> None:
        self._settings = settings
        self._ingest = ingest
        self._guard = guard
        self._skipped: set[int] = set()
        self.polls = 0  # completed polls, for tests and logs
        self._wake = asyncio.Event()

    async def run(self) -> None:
        delay = 1.0
        while True:
            started_polls = self.polls
            try:
                await self._session()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # network trouble, a refusal, or aioimaplib's own protocol errors
                if self.polls > started_polls:
                    delay = 1.0  # the link worked for a while: start backing off afresh
                log_event(
                    log,
                    "imap.disconnected",
                    logging.WARNING,
                    error=f"{type(exc).__name__}: {exc}"[:200],
                    retry_in=delay,
                )
            await pause(delay)
            delay = min(delay * 2, max(self._settings.poll_interval, 1.0), 60.0)

    def poke(self) -> None:
        """Poll now rather than at the next interval (tests, ``say --channel email``)."""
        self._wake.set()

    async def _session(self) -> None:
        client = await open_mailbox(self._settings, self._guard)
        log_event(log, "imap.connected", host=self._settings.imap_host, mailbox=self._settings.imap_mailbox)
        try:
            idle = self._settings.imap_idle and client.has_capability("IDLE")
            while True:
                raise_if_cancelled()
                await self.poll(client)
                if idle:
                    await self._idle(client)
                else:
                    self._wake.clear()
                    await wait_set(self._wake, self._settings.poll_interval)
        finally:
            await close_mailbox(client)

    async def _idle(self, client: IMAP4) -> None:
        """Wait until the server reports a change, ``poke`` is called, or the poll interval ends."""
        self._wake.clear()
        idle = await client.idle_start(timeout=self._settings.poll_interval)
        push = asyncio.ensure_future(client.wait_server_push(timeout=self._settings.poll_interval + 5))
        woken = asyncio.ensure_future(self._wake.wait())
        try:
            await asyncio.wait({push, woken}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            woken.cancel()
            if not push.done():
                await client.stop_wait_server_push()
            try:
                result = await push
            except TimeoutError:
                result = STOP_WAIT_SERVER_PUSH
            client.idle_done()
            await asyncio.wait_for(idle, 10)
        log.debug("imap.idle_ended", extra={"omnirouter_fields": {"pushed": result != STOP_WAIT_SERVER_PUSH}})

    async def poll(self, client: IMAP4) -> int:
        """Record every unseen mail; returns how many were recorded now."""
        found = _ok(await client.uid_search("UNSEEN"), "searching unseen mail")
        uids = [int(n) for line in found.lines[:1] if isinstance(line, bytes) for n in line.split() if n.isdigit()]
        uids = [uid for uid in uids if uid not in self._skipped]
        done = 0
        for start in range(0, len(uids), _BATCH):  # a backlog a few hundred at a time
            batch = uids[start : start + _BATCH]
            sizes = await self._sizes(client, batch)
            for uid in batch:
                if await self._take(client, uid, sizes.get(uid, 0)):
                    done += 1
        self.polls += 1
        return done

    async def _sizes(self, client: IMAP4, uids: list[int]) -> dict[int, int]:
        response = _ok(await client.uid("fetch", ",".join(map(str, uids)), "(RFC822.SIZE)"), "fetching sizes")
        sizes = {}
        for line in response.lines:
            if isinstance(line, (bytes, bytearray)) and (match := _SIZE.search(bytes(line))):
                uid, size = (match.group(1), match.group(2)) if match.group(1) else (match.group(4), match.group(3))
                sizes[int(uid)] = int(size)
        return sizes

    async def _take(self, client: IMAP4, uid: int, size: int) -> bool:
        most = self._settings.max_message_bytes
        if size > most:
            self._skip(uid, f"larger than {most} bytes")
            return False
        raw = await self._fetch(client, uid, most)
        if raw is None:
            return False  # expunged meanwhile
        if len(raw) > most:  # larger than announced
            self._skip(uid, f"larger than {most} bytes (announced: {size})")
            return False
        try:
            await self._ingest(raw, ())
        except MalformedPayload as exc:
            self._skip(uid, str(exc))
            return False
        except StoreUnavailable:
            log_event(log, "imap.store_unavailable", logging.WARNING, uid=uid)
            raise ImapError("the store is unavailable; the mail stays unseen") from None
        _ok(await client.uid("store", str(uid), "+FLAGS.SILENT", r"(\Seen)"), f"marking mail {uid} seen")
        return True

    async def _fetch(self, client: IMAP4, uid: int, most: int) -> bytes | None:
        """At most ``most`` + 1 bytes of mail ``uid`` (a partial fetch: one more tells a larger mail);
        ``None`` if it is gone. A server that sends more than that anyway loses the connection:
        the mail is skipped and ``ImapError`` raised (the reader connects again)."""
        protocol: _BoundedProtocol = client.protocol
        protocol.expect_at_most(most + 1 + _FETCH_FRAMING)
        fetch = asyncio.ensure_future(client.uid("fetch", str(uid), f"(BODY.PEEK[]<0.{most + 1}>)"))
        overflow = asyncio.ensure_future(protocol.overflowed.wait())
        try:
            await asyncio.wait({fetch, overflow}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            overflow.cancel()
            protocol.expect_at_most(None)
        if not fetch.done():
            fetch.cancel()
            self._skip(uid, f"larger than {most} bytes (sent past its partial fetch)")
            raise ImapError(f"mail {uid}: the server sent more than {most} bytes; reading stopped")
        response = _ok(fetch.result(), f"fetching mail {uid}")
        return next((bytes(line) for line in response.lines if isinstance(line, bytearray)), None)

    def _skip(self, uid: int, reason: str) -> None:
        self._skipped.add(uid)
        log_event(log, "imap.mail_skipped", logging.WARNING, uid=uid, reason=reason[:200])


async def open_mailbox(s: EmailSettings, guard: Egress | None, timeout: float = 30) -> IMAP4:
    """An IMAP client logged in to the mailbox with its folder selected (``ImapError`` with the
    server's words when it refuses; ``guard``: the egress guard the server must pass, ``None`` for
    the install's own). The caller logs out."""
    context = ssl.create_default_context() if s.imap_security == "tls" else None
    client = _Imap(s.imap_host, s.imap_port, context, guard, timeout)
    try:
        await client.wait_hello_from_server()
        _ok(await client.login(s.imap_user or s.address, s.imap_password), "IMAP login")
        _ok(await client.select(s.imap_mailbox), f"selecting {s.imap_mailbox}")
    except BaseException:  # a wrong password must not leave a connection open on every retry
        _drop(client)
        raise
    return client


async def close_mailbox(client: IMAP4) -> None:
    """Log out (briefly: the connection may be gone already) and close the connection."""
    transport = getattr(client.protocol, "transport", None)
    if transport is not None and not transport.is_closing():  # not dropped (a mail too large)
        try:
            await asyncio.wait_for(client.logout(), 5)
        except Exception:  # the connection may be gone already
            pass
    _drop(client)  # a logout that timed out leaves it open


def _drop(client: IMAP4) -> None:
    """Close the client's connection, in whatever state it is (already closed: nothing happens)."""
    transport = getattr(client.protocol, "transport", None) if client.protocol is not None else None
    if transport is not None:
        transport.close()
