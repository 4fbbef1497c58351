"""Who is on the other end of a request: the client's address, read through the reverse proxies the
operator trusts (``server.trusted_proxies``) and through nothing else.

A forwarding header is a claim anybody can make, so it counts only when the peer that sent it is a
trusted proxy, and only the one header the proxy sets (``server.proxy_header``: ``X-Forwarded-For``
or ``Forwarded``): a proxy that writes one passes the other through as the client wrote it. Each
proxy appends the address it saw; reading from the right, the first address that is not one of our
proxies is the client (what a client wrote there itself stays to the left of it and is never read).

Throttles count a client by ``address_block``: an IPv6 client is given a whole /64, so it counts as one.
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


def _forwarded_chain(request: web.Request, header: str) -> list[str]:
    """The addresses the proxies recorded in ``header``, the nearest last (an element without an
    address stays, as an empty entry, and ends the reading there)."""
    if header == "forwarded":
        return [str(entry.get("for", "")).strip() for entry in request.forwarded]
    chain = [part.strip() for value in request.headers.getall("X-Forwarded-For", ()) for part in value.split(",")]
    return [part for part in chain if part]


def client_address(request: web.Request) -> str:
    """The client's IP address as text: the peer's own, or, when the peer is a trusted proxy, the
    right-most address in ``server.proxy_header`` that is not a trusted proxy (an entry that is no
    address, or a chain of proxies only, leaves the nearest proxy's address)."""
    peer = request.remote or "unknown"
    server = request.app[SETTINGS].server
    networks = trusted_networks(server.trusted_proxies)
    nearest = _address(peer)
    if not networks or nearest is None or not _trusted(nearest, networks):
        return peer
    for entry in reversed(_forwarded_chain(request, server.proxy_header)):
        hop = _address(entry)
        if hop is None:
            break
        nearest = hop
        if not _trusted(hop, networks):
            break
    return str(nearest)


def address_block(address: str) -> str:
    """What a throttle counts ``address`` as: an IPv4 address itself, an IPv6 address its /64 (one
    client holds a whole /64, and could otherwise try from each of its addresses in turn)."""
    try:
        found = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(found, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((found, 64), strict=False))
    return str(found)
