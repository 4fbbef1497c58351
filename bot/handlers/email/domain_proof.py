"""Reading the proof that a mail domain is an account's: the ``omnirouter-verification=<token>``
TXT record on the domain, looked up with dnspython's async resolver, through the name servers of
``email.dns_servers`` (the system's when empty).

The lookup answers with what it found, in one of a few outcomes, so the console and the API can say
in words what the admin must do: the record is there; the domain has no such record, or one with
another token (a token of another account's claim, or an old one); the domain does not exist; or no
name server answered (try again later).
"""

from __future__ import annotations

import enum

import dns.asyncresolver
import dns.exception
import dns.nameserver
import dns.resolver

from conversations.mail_domains import TOKEN_PREFIX

LOOKUP_SECONDS = 5.0


class Found(enum.StrEnum):
    """What the domain's TXT records say about a claim's token."""

    PROVEN = "verified"
    NO_RECORD = "no_record"
    WRONG_TOKEN = "wrong_token"
    NO_DOMAIN = "no_domain"
    NO_ANSWER = "lookup_failed"


def name_servers(setting: str) -> list[dns.nameserver.Nameserver]:
    """``email.dns_servers`` as dnspython's name servers: addresses separated by commas or spaces,
    each with ``:port`` when not 53 (an IPv6 one in brackets then: ``[::1]:5353``)."""
    found: list[dns.nameserver.Nameserver] = []
    for item in setting.replace(",", " ").split():
        host, port = item, 53
        if item.startswith("["):
            host, _, rest = item[1:].partition("]")
            port = int(rest[1:]) if rest.startswith(":") else 53
        elif item.count(":") == 1:
            host, _, digits = item.partition(":")
            port = int(digits)
        found.append(dns.nameserver.Do53Nameserver(host, port))
    return found


def check_servers(setting: str) -> str:
    """The setting's check: every entry an address with an optional port."""
    try:
        name_servers(setting)
    except ValueError as bad:
        raise ValueError(f"name servers must be addresses with an optional :port ({bad})") from None
    return setting


async def txt_texts(domain: str, servers: str) -> list[str]:
    """The texts of ``domain``'s TXT records (each record's strings joined). Raises
    ``dns.resolver.NXDOMAIN`` for a domain that does not exist and ``dns.exception.DNSException``
    when no name server answered."""
    resolver = dns.asyncresolver.Resolver(configure=not servers.strip())
    if servers.strip():
        resolver.nameservers = name_servers(servers)
    resolver.lifetime = LOOKUP_SECONDS
    try:
        answer = await resolver.resolve(domain, "TXT", search=False)
    except dns.resolver.NoAnswer:
        return []
    return [b"".join(record.strings).decode("utf-8", "replace") for record in answer]


async def look_for_token(domain: str, token: str, servers: str) -> Found:
    """Whether ``domain`` publishes ``omnirouter-verification=<token>``, and if not, why not."""
    try:
        texts = await txt_texts(domain, servers)
    except dns.resolver.NXDOMAIN:
        return Found.NO_DOMAIN
    except (dns.exception.DNSException, OSError):  # a timeout, no server answering, a name that is no name
        return Found.NO_ANSWER
    ours = [text.strip() for text in texts if text.strip().startswith(TOKEN_PREFIX)]
    if TOKEN_PREFIX + token in ours:
        return Found.PROVEN
    return Found.WRONG_TOKEN if ours else Found.NO_RECORD
