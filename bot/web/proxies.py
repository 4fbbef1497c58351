"""Who is on the other end of a request: the client's address, read through the reverse proxies the
operator trusts (``server.trusted_proxies``) and through nothing else.

A forwarding header is a claim anybody can make, so it counts only when the peer that sent it is a
trusted proxy. Each proxy appends the address it saw to ``X-Forwarded-For``; reading from the right,
the first address that is not one of our proxies is the client (what a client wrote there itself
stays to the left of it and is never read). ``Forwarded`` (RFC 7239) is read the same way when a
proxy sends only that.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Sequence

from aiohttp import web

from bot.keys import SETTINGS

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


@functools.lru_cache(maxsize=8)
def trusted_networks(setting: str) -> tuple[Network, ...]:
    """The networks of ``server.trusted_proxies`` (checked when the settings were loaded)."""
    return tuple(ipaddress.ip_network(part.strip(), strict=False) for part in setting.split(",") if part.strip())


def _address(text: str) -> Address | None:
    text = text.strip().strip('"')
    if text.startswith("["):  # "[2001:db8::1]:4711" in Forwarded
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:  # "192.0.2.1:4711"
        text = text.partition(":")[0]
    try:
        found = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(found, ipaddress.IPv6Address) and found.ipv4_mapped is not None:
        return found.ipv4_mapped  # "::ffff:10.0.0.1" is 10.0.0.1
    return found


def _trusted(address: Address, networks: Sequence[Network]) -> bool:
    return any(address in network for network in networks)


def _forwarded_chain(request: web.Request) -> list[str]:
    """The addresses the proxies recorded, the nearest last."""
    chain = [part for header in request.headers.getall("X-Forwarded-For", ()) for part in header.split(",")]
    if not chain:
        chain = [str(entry.get("for", "")) for entry in request.forwarded]
    return [part.strip() for part in chain if part.strip()]


def client_address(request: web.Request) -> str:
    """The client's IP address as text: the peer's own, or, when the peer is a trusted proxy, the
    right-most forwarded address that is not a trusted proxy (an entry that is no address, or a
    chain of proxies only, leaves the nearest proxy's address)."""
    peer = request.remote or "unknown"
    networks = trusted_networks(request.app[SETTINGS].server.trusted_proxies)
    nearest = _address(peer)
    if not networks or nearest is None or not _trusted(nearest, networks):
        return peer
    for entry in reversed(_forwarded_chain(request)):
        hop = _address(entry)
        if hop is None:
            break
        nearest = hop
        if not _trusted(hop, networks):
            break
    return str(nearest)
