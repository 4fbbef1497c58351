"""One guard for every outbound HTTP request whose destination a tenant or a payload can choose.

An account's admin sets its own Telegram or WhatsApp ``api_base`` and its webhook URLs; the Graph
API names the URL a customer's media is fetched from; a Rasa server or an action endpoint can
answer with a redirect. Unchecked, each of them points the router at itself (its own API from
127.0.0.1), at the network it runs in, or at the cloud's metadata service. Such requests go through
a session of :meth:`Egress.session` (or a connector of :meth:`Egress.connector`):

- a host name is resolved by :class:`GuardedResolver`, which checks every address the name has and
  hands aiohttp only checked addresses; aiohttp connects to exactly those (TLS still names the
  host), so nothing resolves the name again between the check and the connection;
- an address written in the URL (aiohttp asks no resolver for those) is checked by
  :class:`GuardedConnector` before a connection is taken, and so is every hop of a redirect the
  client follows, since each hop asks the connector for its connection; proxies are not used;
- refused: loopback, private (RFC 1918, ULA), link-local, multicast, unspecified, reserved and
  shared (100.64/10) addresses, the IPv6 forms that carry one of those (IPv4-mapped, 6to4, NAT64),
  the cloud metadata addresses and the router's own listening address;
- allowed by name: the hosts a guard is given (:class:`HostRule`: a name, or a name and port; a rule
  without a port stands for the scheme's default ports, 80 and 443) may be at any address but a
  metadata address or the router's own. Which hosts each guard allows — one guard per purpose — is
  the install's policy, in :mod:`bot.handlers.kit.egress_guards`.

aiohttp pools connections per host, port and TLS settings, so a pooled connection is reused only for
the name it was checked for; names are resolved (and checked) once per new connection, not per
request. Entry points (the coming action endpoints use them too): :meth:`Egress.session` for the
calls, :meth:`Egress.check_url` when an account saves a URL, :func:`refusal` to tell a refusal
(permanent) from a network failure (worth a retry). Hosts are compared as
:func:`bot.network_settings.host_name` writes them (IPv6 addresses in brackets), as the Host check does.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.client_reqrep import ClientRequest
from aiohttp.resolver import DefaultResolver

from bot.network_settings import EVERY_ADDRESS, host_entries, host_name

if TYPE_CHECKING:
    from aiohttp.client import ClientTimeout
    from aiohttp.connector import Connection
    from aiohttp.tracing import Trace

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

METADATA_ADDRESSES = frozenset(ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200"))
_SHARED = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
_DEFAULT_PORTS = {"http": 80, "https": 443}
CONNECT_SECONDS = 10.0  # each address of a mail server: a silent one leaves time to try the next


class EgressRefused(OSError):
    """The guard refused a destination; the message says which and why, in one line."""

    def __init__(self, reason: str) -> None:
        super().__init__(errno.EACCES, reason)


class EgressUnresolved(EgressRefused):
    """A host name found no address now (a name server may answer later): nothing to check."""

    def __str__(self) -> str:
        return str(self.strerror)


def refusal(exc: BaseException | None) -> EgressRefused | None:
    """The guard's refusal behind ``exc`` (as aiohttp or httpx wrapped it), if it is one."""
    seen = 0
    while exc is not None and seen < 8:
        if isinstance(exc, EgressRefused):
            return exc
        inner = exc.os_error if isinstance(exc, aiohttp.ClientConnectorError) else None
        exc = inner if isinstance(inner, EgressRefused) else exc.__cause__ or exc.__context__
        seen += 1
    return None


def address_problem(address: IPAddress) -> str | None:
    """Why ``address`` is not a public one (``"loopback"``, ``"private"``, …), or ``None``."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour or _nat64(address)
        if embedded is not None:
            inner = address_problem(embedded)
            return f"{inner}, as {embedded}" if inner else None
    if address in METADATA_ADDRESSES:
        return "a cloud metadata address"
    for test, name in (
        (address.is_loopback, "loopback"),
        (address.is_unspecified, "unspecified"),
        (address.is_link_local, "link-local"),
        (address.is_multicast, "multicast"),
        (address in _SHARED, "shared, carrier-grade NAT"),
        (address.is_reserved, "reserved"),
        (address.is_private, "private"),
        (not address.is_global, "not globally routable"),
    ):
        if test:
            return name
    return None


def _nat64(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if any(address in network for network in _NAT64):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def _address(text: str) -> IPAddress:
    address = ipaddress.ip_address(text.strip("[]").split("%", 1)[0])  # a scoped IPv6 address: fe80::1%eth0
    mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
    return mapped or address


def is_address(host: str) -> bool:
    """Whether ``host`` is an IP address rather than a name."""
    try:
        ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class HostRule:
    """A host the operator allows: by name (as :func:`host_name` writes it), on one port or (``port``
    None) on the scheme's default ports, 80 and 443."""

    host: str
    port: int | None = None

    def matches(self, host: str, port: int | None) -> bool:
        ports = _DEFAULT_PORTS.values() if self.port is None else (self.port,)
        return port in ports and self.host == host_name(host)

    def __str__(self) -> str:
        return self.host if self.port is None else f"{self.host}:{self.port}"


def parse_host_rules(text: str) -> tuple[HostRule, ...]:
    """``"bot-api.lan, rasa:5005, [fd00::5]:8081"`` as rules; ``ValueError`` saying which entry is bad."""
    return tuple(HostRule(host_name(host), port) for host, port in host_entries(text))


def url_rule(url: str) -> HostRule | None:
    """The host and port (the scheme's default when none is written) of an http(s) URL."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port or _DEFAULT_PORTS.get(parts.scheme.lower())
    except ValueError:
        return None
    if parts.scheme.lower() not in _DEFAULT_PORTS or not parts.hostname:
        return None
    return HostRule(host_name(parts.hostname), port)


class Egress:
    """One egress guard: the hosts it allows by name and the address the router listens on (``listen``:
    ``server.host`` and ``server.port``; a wildcard host stands for every address of the machine)."""

    def __init__(
        self, allowed: Iterable[HostRule] = (), listen: tuple[str, int] | None = None, private_ok: bool = False
    ) -> None:
        self.allowed = tuple(allowed)
        self._listen = (listen[0].strip(), listen[1]) if listen else None
        self._private_ok = private_ok  # webhooks.allow_private_networks: every address but metadata and ours
        self._own: frozenset[IPAddress] | None = None

    def allows_name(self, host: str, port: int | None) -> bool:
        return any(rule.matches(host, port) for rule in self.allowed)

    async def check_url(self, url: str) -> HostRule:
        """The save-time check of a URL an account gives (a webhook, an action endpoint): http(s) with
        a host, and an address written in it must pass the guard (a name is checked when it is
        resolved, at call time). Its host and port; ``EgressRefused`` saying what is wrong."""
        rule = url_rule(url)
        if rule is None:
            raise EgressRefused("the URL must be an http:// or https:// URL with a host")
        assert rule.port is not None  # url_rule gives the scheme's port when none is written
        if is_address(rule.host):
            await self.check_address(rule.host, rule.port, rule.host)
        return rule

    async def check_address(self, host: str, port: int, address: str) -> None:
        """Return if ``host`` may be reached at ``address``:``port``; ``EgressRefused`` otherwise."""
        ip = _address(address)
        where = host if host_name(host) == host_name(str(ip)) else f"{host} resolves to {ip}, which"
        if ip in METADATA_ADDRESSES:
            raise EgressRefused(f"{where} is not a public address (a cloud metadata address)")
        if await self._is_own(ip, port):
            raise EgressRefused(f"{where} is not a public address (this router's own, port {port})")
        if self._private_ok or self.allows_name(host, port):
            return
        problem = address_problem(ip)
        if problem:
            raise EgressRefused(
                f"{where} is not a public address ({problem}); "
                "the operator can allow the host by name in egress.allowed_destinations"
            )

    async def checked_addresses(self, host: str, port: int) -> list[str]:
        """The addresses to connect to ``host``:``port`` at, for a client that is not aiohttp (IMAP,
        SMTP): every address the name has is checked (one refused refuses the name), and all are
        returned in the name server's order, so that the client tries each in turn, as any client
        does, and nothing resolves the name again. ``EgressRefused`` saying what is wrong."""
        addresses = [_address(host)] if is_address(host) else await _addresses_of(host, port)
        if not addresses:
            raise EgressUnresolved(f"{host} has no address")
        for ip in addresses:
            await self.check_address(host, port, str(ip))
        return list(dict.fromkeys(str(ip) for ip in addresses))

    async def connect(self, host: str, port: int, timeout: float = CONNECT_SECONDS) -> socket.socket:
        """A non-blocking socket connected to ``host``:``port`` at one of its checked addresses: each
        in turn until one answers, ``timeout`` seconds each; the last one's error if none does."""
        error: OSError | None = None
        for address in await self.checked_addresses(host, port):
            try:
                return await _connected(address, port, timeout)
            except OSError as exc:  # refused, unreachable, or silent (TimeoutError)
                error = exc
        assert error is not None  # checked_addresses returns at least one
        raise error

    async def _is_own(self, ip: IPAddress, port: int) -> bool:
        if self._listen is None or port != self._listen[1]:
            return False
        if ip.is_loopback or ip.is_unspecified:
            return True
        if self._listen[0] in EVERY_ADDRESS:
            return _is_local(ip)
        if self._own is None:
            self._own = frozenset(await _addresses_of(self._listen[0].strip("[]"), port))
        return ip in self._own

    def connector(self, names: AbstractResolver | None = None, **options: Any) -> GuardedConnector:
        """A ``TCPConnector`` (``options`` as aiohttp takes them) that connects only where allowed."""
        return GuardedConnector(self, names=names, **options)

    def session(self, *, limit: int = 100, **options: Any) -> aiohttp.ClientSession:
        """The entry point: an ``aiohttp.ClientSession`` (``options`` as aiohttp takes them) whose every
        request and redirect hop goes through this guard. A refusal raises an ``aiohttp.ClientError``
        for which :func:`refusal` returns the reason."""
        return aiohttp.ClientSession(connector=self.connector(limit=limit), trust_env=False, **options)


def _is_local(ip: IPAddress) -> bool:
    """Whether ``ip`` is an address of this machine (binding to it works only then)."""
    family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.bind((str(ip), 0))
    except OSError:
        return False
    return True


async def _connected(address: str, port: int, timeout: float) -> socket.socket:
    family = socket.AF_INET6 if ipaddress.ip_address(address).version == 6 else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setblocking(False)
    try:
        await asyncio.wait_for(asyncio.get_running_loop().sock_connect(sock, (address, port)), timeout)
    except BaseException:
        sock.close()
        raise
    return sock


async def _addresses_of(host: str, port: int) -> list[IPAddress]:
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return []
    return [_address(str(info[4][0])) for info in infos]


class GuardedResolver(AbstractResolver):
    """Resolves with ``names`` (aiohttp's default resolver unless given), then checks every address;
    what it returns is what aiohttp connects to."""

    def __init__(self, egress: Egress, names: AbstractResolver | None = None) -> None:
        self._egress = egress
        self._names = names or DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await self._names.resolve(host, port, family)
        for entry in found:
            await self._egress.check_address(host, port, str(entry["host"]))
        return found

    async def close(self) -> None:
        await self._names.close()


class GuardedConnector(aiohttp.TCPConnector):
    """aiohttp's connector with :class:`GuardedResolver`, checking address literals itself."""

    def __init__(self, egress: Egress, names: AbstractResolver | None = None, **options: Any) -> None:
        super().__init__(resolver=GuardedResolver(egress, names), **options)
        self._egress = egress
        self._cleared: set[tuple[str, int]] = set()  # address literals checked once: the answer is fixed

    async def connect(self, req: ClientRequest, traces: list[Trace], timeout: ClientTimeout) -> Connection:
        if req.proxy is not None:
            raise aiohttp.ClientConnectorError(req.connection_key, EgressRefused("guarded requests use no proxy"))
        host, port = req.url.raw_host or "", req.port or 0
        if (host, port) not in self._cleared and is_address(host):
            try:
                await self._egress.check_address(host, port, host)
            except EgressRefused as exc:
                raise aiohttp.ClientConnectorError(req.connection_key, exc) from None
            self._cleared.add((host, port))
        return await super().connect(req, traces, timeout)
