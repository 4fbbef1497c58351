"""Real mail servers for the e-mail tests, on 127.0.0.1 only.

* :class:`Dovecot` runs Debian's ``dovecot`` (package ``dovecot-imapd``) in the foreground with a
  throwaway configuration and Maildirs under a temporary directory; any user name logs in with
  :data:`IMAP_PASSWORD`, so each test reads a mailbox of its own.
* :class:`SmtpSink` is an ``aiosmtpd`` server that keeps every mail it is given (our outbound
  replies land there), and can refuse recipients to test failures.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import tempfile
import warnings
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from conversations.embedded import free_port

IMAP_PASSWORD = "mailbox-secret"
DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"

_CONFIG = """\
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
instance_name = omnirouter-test-{port}
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:{mail}/%u/Maildir
first_valid_uid = 0
{users}
passdb {{
  driver = static
  args = password={password}
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={mail}/%u
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service anvil {{
  chroot =
}}
service auth {{
  unix_listener auth-userdb {{
    mode = 0666
  }}
}}
"""


class Dovecot:
    """A Dovecot IMAP server of our own (no system service, no root needed when not root)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        # the mail processes run as another user when we are root: their Maildirs must not sit
        # below a private (0700) temporary directory
        self.mail = Path(tempfile.mkdtemp(prefix="omnirouter-maildirs-")) if os.geteuid() == 0 else root / "mail"
        self._process: asyncio.subprocess.Process | None = None

    def _config(self) -> str:
        if os.geteuid() == 0:  # Debian's dovecot and dovenull users run the daemons; mail as nobody
            nobody = pwd.getpwnam("nobody")
            uid, gid, users = nobody.pw_uid, nobody.pw_gid, ""
        else:  # everything as the current user
            me = pwd.getpwuid(os.geteuid())
            uid, gid = me.pw_uid, me.pw_gid
            users = (
                f"default_login_user = {me.pw_name}\ndefault_internal_user = {me.pw_name}\n"
                f"default_internal_group = {me.pw_name}\n"
            )
        return _CONFIG.format(
            root=self.root, mail=self.mail, port=self.port, password=IMAP_PASSWORD, uid=uid, gid=gid, users=users
        )

    async def start(self) -> None:
        for sub in ("run", "state"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        self.mail.mkdir(parents=True, exist_ok=True)
        os.chmod(self.mail, 0o777)
        config = self.root / "dovecot.conf"
        config.write_text(self._config())
        self._process = await asyncio.create_subprocess_exec(
            DOVECOT, "-F", "-c", str(config), stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
        )
        for _ in range(200):
            if self._process.returncode is not None:
                assert self._process.stderr is not None
                error = (await self._process.stderr.read()).decode()
                raise RuntimeError(f"dovecot did not start: {error} {self.log()}")
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
                writer.close()
                return
            except OSError:
                await asyncio.sleep(0.05)
        raise RuntimeError(f"dovecot is not listening on {self.port}: {self.log()}")

    def log(self) -> str:
        path = self.root / "dovecot.log"
        return path.read_text()[-2000:] if path.exists() else ""

    async def stop(self) -> None:
        if self._process is not None and self._process.returncode is None:
            self._process.terminate()
            try:
                await asyncio.wait_for(self._process.wait(), 10)
            except TimeoutError:
                self._process.kill()
                await self._process.wait()
        if self.mail != self.root / "mail":
            shutil.rmtree(self.mail, ignore_errors=True)


class _Sink:
    def __init__(self, owner: SmtpSink) -> None:
        self._owner = owner

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address in self._owner.refuse:
            return self._owner.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        message = BytesParser(policy=policy.default).parsebytes(raw)
        assert isinstance(message, EmailMessage)
        self._owner.received.append((list(envelope.rcpt_tos), message, raw))
        return "250 OK queued"


class SmtpSink:
    """An aiosmtpd server keeping every mail: ``received`` is ``(recipients, message, raw)``.
    With ``password`` it offers AUTH (PLAIN, LOGIN; without TLS, on 127.0.0.1 only) and takes mail
    only from a client that logged in with that password (any user name)."""

    def __init__(self, smtputf8: bool = True, password: str | None = None) -> None:
        self.smtputf8 = smtputf8  # offers SMTPUTF8 (RFC 6531), as most servers do
        self.password = password
        self.received: list[tuple[list[str], EmailMessage, bytes]] = []
        self.refuse: dict[str, str] = {}
        self.port = 0
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        auth: dict[str, Any] = {}
        if self.password is not None:
            auth = {"authenticator": self._authenticate, "auth_require_tls": False, "auth_required": True}

        def serve() -> SMTP:
            with warnings.catch_warnings():  # AUTH without TLS: on 127.0.0.1, for the tests, on purpose
                warnings.simplefilter("ignore", UserWarning)
                return SMTP(_Sink(self), enable_SMTPUTF8=self.smtputf8, loop=loop, **auth)

        self._server = await loop.create_server(serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        good = isinstance(data, LoginPassword) and data.password == (self.password or "").encode()
        return AuthResult(success=good, handled=False)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
