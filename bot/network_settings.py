"""The settings sections about who reaches the router and whom it reaches: ``[server]`` (its
address, public URL, the host names it answers to, trusted proxies), ``[api]``, ``[webhooks]`` and
``[egress]``, with the host-name rules they share (``host_name``: how the Host check and the egress
guard compare hosts)."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from bot.setting_fields import between as _between
from bot.setting_fields import one_of as _one_of
from bot.setting_fields import setting as _setting
from bot.setting_fields import url as _url


def _networks(value: str) -> str | None:
    """Comma-separated IP addresses or CIDR networks (``10.0.0.0/8, ::1``), or empty."""
    for part in (p.strip() for p in value.split(",")):
        if not part:
            continue
        try:
            ipaddress.ip_network(part, strict=False)
        except ValueError:
            return f"{part!r} is not an IP address or network (write e.g. 127.0.0.1, 10.0.0.0/8, ::1)"
    return None


def _host_names(value: str) -> str | None:
    for name in (n.strip() for n in value.split(",")):
        if name and not re.fullmatch(r"[A-Za-z0-9_.-]+|\[[0-9A-Fa-f:.]+\]", name):
            return f"{name!r} is not a host name (no scheme, port or path: chat.example.com)"
    return None


EVERY_ADDRESS = frozenset({"", "0.0.0.0", "::", "[::]", "*"})  # server.host values that name no one address


def host_name(value: str) -> str:
    """A host as the router compares hosts (the Host check, the egress guard's rules): lower case,
    no port, no final dot, an address in its short form and an IPv6 address in brackets."""
    value = value.strip().lower()
    if value.startswith("["):
        host, closed, _ = value[1:].partition("]")
        if not closed:
            return value  # "[::1" names no host: kept, so that it matches none
    elif value.count(":") > 1:  # a bare IPv6 address (a setting; a Host header has brackets)
        host = value
    else:
        host = value.partition(":")[0]
    host = host.rstrip(".")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    return f"[{address}]" if address.version == 6 else str(address)


@dataclass(frozen=True)
class ServerSettings:
    host: str = _setting("127.0.0.1", alias="HOST", doc="address to listen on")
    port: int = _setting(8080, check=_between(1, 65535), alias="PORT", doc="port to listen on")
    public_url: str = _setting(
        "",
        check=_url,
        alias="PUBLIC_URL",
        doc="URL the router is reached at from outside (webhook signatures, links); its host is answered",
    )
    allowed_hosts: str = _setting(
        "",
        check=_host_names,
        alias="ALLOWED_HOSTS",
        doc="inbound: more host names requests may name in Host (comma-separated), besides public_url's and "
        "localhost; others get 421 (the hosts the router may call are egress.allowed_destinations)",
    )
    client_max_size: int = _setting(
        1_048_576, check=_between(1024, 64 * 1_048_576), doc="largest request body, in bytes"
    )
    max_upload_bytes: int = _setting(
        26_214_400,
        check=_between(1024, 512 * 1_048_576),
        doc="largest file a signed-in agent uploads with a reply (a channel may carry less)",
    )
    trusted_proxies: str = _setting(
        "",
        check=_networks,
        doc="reverse proxies (addresses or CIDRs, comma-separated) whose proxy_header names the client; "
        "empty: forwarding headers are ignored",
    )
    proxy_header: str = _setting(
        "x-forwarded-for",
        check=_one_of("x-forwarded-for", "forwarded"),
        doc="the one header the trusted proxies set: x-forwarded-for, or forwarded (RFC 7239); the other is ignored",
    )
    log_format: str = _setting(
        "text",
        check=_one_of("text", "json"),
        alias="LOG_FORMAT",
        doc="log lines as `text` or `json` (one object per line)",
    )
    log_level: str = _setting(
        "info",
        check=_one_of("debug", "info", "warning", "error"),
        alias="LOG_LEVEL",
        doc="least severe log lines written: `debug`, `info`, `warning` or `error`",
    )
    event_loop: str = _setting(
        "uvloop",
        check=_one_of("uvloop", "asyncio"),
        doc="the router's event loop: `uvloop` (faster, libuv underneath) or `asyncio` (the standard library's)",
    )

    @property
    def local_url(self) -> str:
        """Where a command on this machine reaches the router: a wildcard address (``0.0.0.0``)
        is reached, and named, as 127.0.0.1 (it is no host name the router answers)."""
        host = "127.0.0.1" if self.host.strip() in EVERY_ADDRESS else self.host.strip()
        return f"http://{f'[{host}]' if ':' in host and not host.startswith('[') else host}:{self.port}"


@dataclass(frozen=True)
class ApiSettings:
    token: str = _setting(
        "",
        alias="API_TOKEN",
        doc="install-wide (superadmin) bearer token for /api; empty: one generated on first start and kept sealed in the store",
    )
    token_file: str = _setting(
        "var/api.token",
        doc="where a generated install token is written (mode 0600) for the CLI; written again when deleted, "
        "replaced only by `api-token --rotate`",
    )


@dataclass(frozen=True)
class WebhookSettings:
    max_attempts: int = _setting(15, check=_between(1, 100), doc="attempts before a webhook delivery is given up")
    base_delay: float = _setting(5.0, check=_between(0.001, 3600), doc="first retry delay, seconds (doubles, jittered)")
    max_delay: float = _setting(3600.0, check=_between(0.001, 86400), doc="longest retry delay, seconds")
    timeout: float = _setting(10.0, check=_between(0.1, 120), doc="seconds a receiver has to answer")
    lease_seconds: float = _setting(
        60.0, check=_between(1, 3600), doc="how long a worker holds a delivery before another may take it"
    )
    poll_interval: float = _setting(
        1.0, check=_between(0.01, 60), doc="how often an idle worker looks for due deliveries"
    )
    concurrency: int = _setting(
        8, check=_between(0, 1000), doc="deliveries in flight per process; 0: this process delivers none"
    )
    allow_private_networks: bool = _setting(
        False,
        doc="deprecated (name the receivers in egress.allowed_destinations instead): deliver to loopback and "
        "private addresses too, but never to metadata addresses or the router's own",
    )


def host_entries(text: str) -> list[tuple[str, int | None]]:
    """``"a.lan, b.lan:5005, [fd00::5]:81"`` as (host, port or None) pairs; ``ValueError`` names a bad entry."""
    entries = []
    for entry in (e.strip() for e in text.split(",")):
        if not entry:
            continue
        try:
            parts = urlsplit(f"//{entry}")
            host, port = parts.hostname, parts.port
        except ValueError:
            host, port = None, None
        if not host or parts.path or parts.query or parts.fragment or parts.username or any(c.isspace() for c in entry):
            raise ValueError(f"{entry!r} is not a host name or host:port")
        entries.append((host, port))
    return entries


def _host_list(value: str) -> str | None:
    try:
        host_entries(value)
    except ValueError as exc:
        return f"{exc} (a comma-separated list of host names, each with an optional :port)"
    return None


@dataclass(frozen=True)
class EgressSettings:
    allowed_destinations: str = _setting(
        "",
        check=_host_list,
        doc="outbound: hosts (name or name:port, comma-separated; no port: 80 and 443) the router may call even "
        "at loopback or private addresses, and accounts may use as api_base",
    )
