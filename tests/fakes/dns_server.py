"""A small DNS server on 127.0.0.1 (UDP) that answers TXT queries from a table the test fills: a
domain's registrar's name servers, as far as domain verification of mailbox inboxes asks them.
Answers are built with dnspython (the client library the router asks with); a name not in the table
is ``NXDOMAIN``; a name in it with no records answers with none."""

from __future__ import annotations

import asyncio

import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset


class FakeDns(asyncio.DatagramProtocol):
    """``txt[name]``: the TXT texts of ``name`` (lower case, no final dot). ``address``: the value
    of ``email.dns_servers`` that points the router here."""

    def __init__(self) -> None:
        self.txt: dict[str, list[str]] = {}
        self.queries: list[str] = []
        self._transport: asyncio.DatagramTransport | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.create_datagram_endpoint(lambda: self, local_addr=("127.0.0.1", 0))

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]  # a datagram endpoint's

    async def stop(self) -> None:
        if self._transport is not None:
            self._transport.close()

    @property
    def address(self) -> str:
        assert self._transport is not None
        return f"127.0.0.1:{self._transport.get_extra_info('sockname')[1]}"

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        assert self._transport is not None
        self._transport.sendto(self.answer(data), addr)

    def answer(self, wire: bytes) -> bytes:
        query = dns.message.from_wire(wire)
        response = dns.message.make_response(query)
        question = query.question[0]
        name = question.name.to_text(omit_final_dot=True).lower()
        self.queries.append(name)
        if name not in self.txt:
            response.set_rcode(dns.rcode.NXDOMAIN)
        elif question.rdtype == dns.rdatatype.TXT and self.txt[name]:
            texts = [f'"{text}"' for text in self.txt[name]]
            response.answer.append(
                dns.rrset.from_text_list(question.name, 60, dns.rdataclass.IN, dns.rdatatype.TXT, texts)
            )
        return response.to_wire()
