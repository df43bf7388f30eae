"""Authoritative DNS server for the seed zone, over UDP and TCP, wire format by dnslib.

Answers follow sipa/bitcoin-seeder dns.cpp: A/AAAA for the apex and whitelisted `x<hex>` flag names,
as many records as fit a 512-byte UDP reply (computed per answer, not a fixed count), NS in the
authority section when there are answers and SOA when there are none, AA set, RA clear. Which
addresses go in is the active answer mode's choice (modes.py). Names outside the zone are REFUSED,
unknown names inside it NXDOMAIN. A packet with a parsable header but a bad body gets FORMERR; one
without (or a response, which must never be answered, to avoid loops) is dropped.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import re
import socket
import struct
import time
from dataclasses import dataclass

from dnslib import AAAA, NS, OPCODE, QTYPE, RCODE, RR, SOA, A, DNSBuffer, DNSHeader, DNSLabel, DNSQuestion, DNSRecord

from .config import SeederConfig
from .metrics import SeederCounters
from .dnsfast import SimpleQuery, pack_answer, parse_simple
from .modes import Answer, AnswerContext, AnswerQuery, Mode

log = logging.getLogger("harness_node.seeder.dns")

DNS_HEADER_SIZE = 12
# main.cpp filter_whitelist: the service-flag combinations a `x<hex>.` subdomain may ask for.
WHITELISTED_FLAGS = frozenset({0x1, 0x5, 0x9, 0x49, 0x809, 0x849, 0xD, 0x400, 0x404, 0x408, 0x448, 0xC08,
                               0xC48, 0x40C})
# main.cpp GetIPList: 'x', no leading zero, at most 16 hex digits (a uint64).
FLAG_LABEL = re.compile(rb"x([1-9a-f][0-9a-f]{0,15})")
# dns.cpp write_record_soa(..., time(NULL), 604800, 86400, 2592000, 604800): refresh, retry, expire, minimum
SOA_REFRESH, SOA_RETRY, SOA_EXPIRE, SOA_MINIMUM = 604800, 86400, 2592000, 604800
CLASS_IN, CLASS_ANY = 1, 255  # RFC 1035 (dnslib names ANY "*")
TCP_MAX_MESSAGE = 65535
TCP_IDLE_TIMEOUT = 10.0  # RFC 7766 §6.2.3 suggests timeouts of the order of seconds
TCP_MAX_CLIENTS = 256  # bounds what a connection flood can hold open
# A testnet's nodes start together and ask at once: 10,000 queries arrive within seconds while the
# crawler keeps the loop busy, and the default buffer (~200 kB, ~500 queries with their kernel
# overhead) dropped 26,615 of 40,507 of them in one 10,000-node deploy. 16 MiB holds ~20,000.
UDP_RECEIVE_BUFFER = 16 * 1024 * 1024
QUESTIONS_KEPT = 1024  # distinct seed questions whose authority bytes the fast path keeps
# what a question's name is in the zone (Responder._classify)
NAME_OUTSIDE, NAME_APEX, NAME_SEEDS, NAME_NODATA, NAME_NS, NAME_NXDOMAIN = (
    "outside", "apex", "seeds", "nodata", "ns", "nxdomain")


@dataclass(frozen=True, slots=True)
class Reply:
    data: bytes
    delay: float = 0.0


def _rr_sizes() -> dict[int, int]:
    """Bytes one A / AAAA answer adds to a reply: its owner name compresses to a 2-byte pointer."""
    q = DNSRecord.question("x.example.", "A").reply()
    base = len(q.pack())
    sizes = {}
    for qtype, rdata in ((QTYPE.A, A("192.0.2.1")), (QTYPE.AAAA, AAAA("2001:db8::1"))):
        r = DNSRecord.question("x.example.", "A").reply()
        r.add_answer(RR(r.q.qname, qtype, rdata=rdata, ttl=1))
        sizes[qtype] = len(r.pack()) - base
    return sizes


RR_SIZE = _rr_sizes()  # {A: 16, AAAA: 28}
A_SIZE, AAAA_SIZE = RR_SIZE[QTYPE.A], RR_SIZE[QTYPE.AAAA]


def pack_within(reply: DNSRecord, limit: int) -> tuple[DNSRecord, bytes]:
    """Pack `reply`; if it exceeds `limit`, cut it to header + question with TC set (RFC 2181 §9)."""
    data = bytes(reply.pack())
    if len(data) > limit:
        reply = DNSRecord(DNSHeader(id=reply.header.id, bitmap=reply.header.bitmap, tc=1), q=reply.q)
        data = bytes(reply.pack())
    return reply, data


class Responder:
    """Bytes in, bytes out: one DNS query to one reply. No sockets, so tests and the bench can drive it."""

    def __init__(self, config: SeederConfig, mode: Mode, ctx: AnswerContext, counters: SeederCounters) -> None:
        self.config = config
        self.mode = mode  # swapped at runtime by the control API
        self.ctx = ctx
        self.counters = counters
        self.zone = DNSLabel(config.zone)
        self._zone_labels = tuple(lbl.lower() for lbl in self.zone.label)
        self._ns = DNSLabel(config.ns_name)
        ns_labels = tuple(lbl.lower() for lbl in self._ns.label)
        n = len(self._zone_labels)
        self._ns_relative = ns_labels[:-n] if ns_labels[-n:] == self._zone_labels else None
        self._ns_ip = ipaddress.ip_address(config.dns_host)
        self._authority_size = self._measure_authority()
        self._questions: dict[bytes, tuple[bytes, str] | None] = {}  # question -> (authority, qname)

    # --- entry point ------------------------------------------------------------------------

    def respond(self, data: bytes, transport: str, client: str = "") -> Reply | None:
        limit = self.config.udp_payload if transport == "udp" else TCP_MAX_MESSAGE
        simple = parse_simple(data) if len(data) <= limit else None
        if simple is not None:
            kind, flags = self._classify(simple.labels)
            if kind in (NAME_APEX, NAME_SEEDS):
                return self._answer_seeds(data, simple, flags, limit, transport, client)
        return self._respond(data, limit, transport, client)

    def _respond(self, data: bytes, limit: int, transport: str, client: str,
                 answer: Answer | None = None) -> Reply | None:
        """dnslib's path: every query the fast path does not take, and the reference for the ones it does."""
        if len(data) < DNS_HEADER_SIZE:
            self.counters.dropped += 1
            return None
        header = DNSHeader.parse(DNSBuffer(data[:DNS_HEADER_SIZE]))
        if header.qr:
            self.counters.dropped += 1
            return None
        try:
            query = DNSRecord.parse(data)
        except Exception:  # noqa: BLE001 -- untrusted bytes: any parse failure is a format error
            return self._error(header, RCODE.FORMERR, transport, client, "unparsable")
        if len(data) > limit:
            return self._error(header, RCODE.FORMERR, transport, client, "oversized")
        if header.opcode != OPCODE.QUERY:
            return self._error(header, RCODE.NOTIMP, transport, client, "opcode")
        if len(query.questions) != 1:
            return self._error(header, RCODE.FORMERR, transport, client, "qdcount")
        try:
            return self._answer(query, limit, transport, client, answer)
        except Exception:  # noqa: BLE001 -- one bad query must not stop the server
            log.warning("cannot answer %r", data, exc_info=True)
            return self._error(header, RCODE.SERVFAIL, transport, client, "internal")

    def _classify(self, labels: tuple[bytes, ...]) -> tuple[str, int]:
        """What a question's (lower-cased) name is in our zone, and the service flags it asks for."""
        n = len(self._zone_labels)
        if labels[-n:] != self._zone_labels:
            return NAME_OUTSIDE, 0
        relative = labels[:-n]
        if not relative:
            return NAME_APEX, 0
        if len(relative) == 1 and (m := FLAG_LABEL.fullmatch(relative[0])):
            flags = int(m.group(1), 16)
            # a flag outside the whitelist: the name exists, with no data
            return (NAME_SEEDS, flags) if flags in WHITELISTED_FLAGS else (NAME_NODATA, 0)
        if relative == self._ns_relative:
            return NAME_NS, 0
        return NAME_NXDOMAIN, 0

    # --- building answers -------------------------------------------------------------------

    def _answer(self, query: DNSRecord, limit: int, transport: str, client: str,
                answer: Answer | None = None) -> Reply:
        q: DNSQuestion = query.q
        reply = query.reply(ra=0, aa=1)
        reply.header.tc = 0
        reply.header.rcode = RCODE.NOERROR
        qtype, qclass = q.qtype, q.qclass
        kind, flags = self._classify(tuple(lbl.lower() for lbl in q.qname.label))
        if qclass not in (CLASS_IN, CLASS_ANY) or kind == NAME_OUTSIDE:
            reply.header.aa = 0
            reply.header.rcode = RCODE.REFUSED
            return self._finish(reply, limit, transport, client, source="zone")
        source, records, delay = "zone", 0, 0.0
        if kind == NAME_APEX:
            if qtype in (QTYPE.NS, QTYPE.ANY):
                reply.add_answer(self._ns_rr())
            if qtype in (QTYPE.SOA, QTYPE.ANY):
                reply.add_answer(self._soa_rr())
        if kind in (NAME_APEX, NAME_SEEDS) and qtype in (QTYPE.A, QTYPE.AAAA, QTYPE.ANY):
            source, (records, delay) = "mode", self._add_seeds(reply, flags, qtype, limit, answer)
        elif kind == NAME_NS:
            want = QTYPE.A if self._ns_ip.version == 4 else QTYPE.AAAA
            if qtype in (want, QTYPE.ANY):
                rdata = A(str(self._ns_ip)) if want == QTYPE.A else AAAA(str(self._ns_ip))
                reply.add_answer(RR(q.qname, want, rdata=rdata, ttl=self.config.ns_ttl))
        elif kind == NAME_NXDOMAIN:
            reply.header.rcode = RCODE.NXDOMAIN
        if reply.header.rcode == RCODE.NOERROR and reply.rr:
            if not any(rr.rtype == QTYPE.NS for rr in reply.rr):
                reply.add_auth(self._ns_rr())
        else:
            reply.add_auth(self._soa_rr())  # negative answer (RFC 2308): SOA, never NS (no referral loop)
        return self._finish(reply, limit, transport, client, source, records, delay)

    def _add_seeds(self, reply: DNSRecord, flags: int, qtype: int, limit: int,
                   answer: Answer | None = None) -> tuple[int, float]:
        """Ask the mode for addresses (unless the fast path already did) and add those that fit.

        Returns (records added, delay the mode asked for).
        """
        families = {QTYPE.A: (4,), QTYPE.AAAA: (6,)}.get(qtype, (4, 6))
        budget = limit - len(reply.pack()) - self._authority_size
        if answer is None:
            answer = self._ask_mode(families, flags, budget)
        if answer.nxdomain:
            reply.header.rcode = RCODE.NXDOMAIN
            return 0, answer.delay
        fitted = self._fit(answer, budget)
        for ip in fitted:
            rtype = QTYPE.AAAA if ":" in ip else QTYPE.A
            rdata = AAAA(ip) if rtype == QTYPE.AAAA else A(ip)
            reply.add_answer(RR(reply.q.qname, rtype, rdata=rdata, ttl=self.config.ttl))
        return len(fitted), answer.delay

    def _ask_mode(self, families: tuple[int, ...], flags: int, budget: int) -> Answer:
        # For ANY, ask for as many as would fit if all were A; _fit stops when the reply is full.
        smallest = A_SIZE if 4 in families else AAAA_SIZE
        ask = max(0, min(self.config.max_records, budget // smallest))
        answer = self.mode.answer(AnswerQuery(families, flags, ask), self.ctx)
        if len(answer.addresses) > ask:
            answer = Answer(answer.addresses[:ask], answer.nxdomain, answer.delay)
        return answer

    def _fit(self, answer: Answer, budget: int) -> list[str]:
        """The addresses, in order, that fit `budget` bytes of answer records."""
        fitted = []
        for ip in answer.addresses:
            size = AAAA_SIZE if ":" in ip else A_SIZE
            if size > budget:
                break
            fitted.append(ip)
            budget -= size
        self.counters.records[self.mode.name] += len(fitted)
        return fitted

    def _answer_seeds(self, data: bytes, query: SimpleQuery, flags: int, limit: int, transport: str,
                      client: str) -> Reply:
        """The fast path (dnsfast.py) for a plain A/AAAA query of the apex or an `x<hex>` name."""
        if query.question not in self._questions:
            self._questions[query.question] = self._learn_question(data)
        known = self._questions[query.question]
        if known is None:
            return self._respond(data, limit, transport, client)
        authority, qname = known
        families = (4,) if query.qtype == QTYPE.A else (6,)
        budget = limit - DNS_HEADER_SIZE - len(query.question) - self._authority_size
        answer = self._ask_mode(families, flags, budget)
        fitted = [] if answer.nxdomain else self._fit(answer, budget)
        if not fitted:  # NXDOMAIN or no data: a negative answer, with its dated SOA, is dnslib's
            return self._respond(data, limit, transport, client, answer)
        self._note(query.qtype, RCODE.NOERROR, False, qname, transport, client, "mode", len(fitted), answer.delay,
                   fitted)
        return Reply(pack_answer(query, fitted, self.config.ttl, authority), answer.delay)

    def _learn_question(self, data: bytes) -> tuple[bytes, str] | None:
        """The authority section (NS) packed after this question, and the name as dnslib prints it.

        None if those bytes depend on the answers before them: dnslib compresses names case-sensitively,
        so after `X9.Seed.TESTNET.` it writes the zone in full and the NS name points there.
        """
        if len(self._questions) >= QUESTIONS_KEPT:
            self._questions.clear()  # bounded: a client can vary the letter case of a name at will
        query = DNSRecord.parse(data)
        packed = []
        for answers in (0, 1):
            reply = query.reply(ra=0, aa=1)
            for _ in range(answers):
                reply.add_answer(RR(query.q.qname, QTYPE.A, rdata=A("192.0.2.1"), ttl=1))
            reply.add_auth(self._ns_rr())
            packed.append(bytes(reply.pack())[len(data) + answers * A_SIZE:])
        return (packed[0], str(query.q.qname)) if packed[0] == packed[1] else None

    def _measure_authority(self) -> int:
        """Room to keep for the authority record (NS with answers, SOA without): the larger one.

        Every question we answer ends in the zone, so the record's owner name always compresses to
        a pointer and its size does not depend on the question.
        """
        question = DNSRecord.question(str(self.zone))
        base = len(question.reply().pack())
        sizes = []
        for rr in (self._ns_rr(), self._soa_rr()):
            probe = question.reply()
            probe.add_auth(rr)
            sizes.append(len(probe.pack()) - base)
        return max(sizes)

    def _ns_rr(self) -> RR:
        return RR(self.zone, QTYPE.NS, rdata=NS(self._ns), ttl=self.config.ns_ttl)

    def _soa_rr(self) -> RR:
        soa = SOA(self._ns, DNSLabel(self.config.mbox),
                  (int(time.time()) & 0xFFFFFFFF, SOA_REFRESH, SOA_RETRY, SOA_EXPIRE, SOA_MINIMUM))
        return RR(self.zone, QTYPE.SOA, rdata=soa, ttl=self.config.ns_ttl)

    def _finish(self, reply: DNSRecord, limit: int, transport: str, client: str, source: str,
                records: int = 0, delay: float = 0.0) -> Reply:
        reply, data = pack_within(reply, limit)
        self._account(reply, transport, client, source, records, delay)
        return Reply(data, delay)

    def _error(self, header: DNSHeader, rcode: int, transport: str, client: str, why: str) -> Reply:
        out = DNSHeader(id=header.id, qr=1, opcode=header.opcode, rd=header.rd, rcode=rcode)
        reply = DNSRecord(out)
        self._account(reply, transport, client, "error:" + why, 0, 0.0)
        return Reply(bytes(reply.pack()))

    def _account(self, reply: DNSRecord, transport: str, client: str, source: str, records: int,
                 delay: float) -> None:
        self._note(reply.q.qtype if reply.questions else None, reply.header.rcode, bool(reply.header.tc),
                   str(reply.q.qname) if reply.questions else "", transport, client, source, records, delay,
                   [str(rr.rdata) for rr in reply.rr if rr.rtype in (QTYPE.A, QTYPE.AAAA)])

    def _note(self, qtype_code: int | None, rcode_code: int, tc: bool, qname: str, transport: str, client: str,
              source: str, records: int, delay: float, addresses: list[str]) -> None:
        """Count the answer, and log it as one JSON line at INFO (docs/seeder.md)."""
        qtype = "none" if qtype_code is None else QTYPE.get(qtype_code, str(qtype_code))
        if qtype not in _QTYPE_LABELS:
            qtype = "other"  # keep the label set small and fixed
        rcode = RCODE.get(rcode_code, str(rcode_code))
        self.counters.queries[(qtype, rcode)] += 1
        if log.isEnabledFor(logging.INFO):
            log.info(json.dumps({
                "event": "dns_answer", "mode": self.mode.name, "source": source, "transport": transport,
                "client": client, "qname": qname, "qtype": qtype, "rcode": rcode, "records": records,
                "tc": tc, "delay": delay, "addresses": addresses,
            }, separators=(",", ":")))


_QTYPE_LABELS = frozenset({"A", "AAAA", "NS", "SOA", "ANY", "TXT", "MX", "CNAME", "PTR", "SRV", "none"})


# --- transports ------------------------------------------------------------------------------


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, responder: Responder) -> None:
        self.responder = responder
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        reply = self.responder.respond(data, "udp", addr[0])
        if reply is None or self.transport is None:
            return
        if reply.delay > 0:
            asyncio.get_running_loop().call_later(reply.delay, self._send, reply.data, addr)
        else:
            self._send(reply.data, addr)

    def _send(self, data: bytes, addr: tuple) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(data, addr)

    def error_received(self, exc: Exception) -> None:
        log.debug("udp error: %s", exc)  # ICMP unreachable from a client that went away

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None


def _grow_receive_buffer(sock: socket.socket) -> None:
    """Ask for UDP_RECEIVE_BUFFER (beyond net.core.rmem_max where allowed: root)."""
    for option in (getattr(socket, "SO_RCVBUFFORCE", None), socket.SO_RCVBUF):
        if option is None:
            continue
        try:
            sock.setsockopt(socket.SOL_SOCKET, option, UDP_RECEIVE_BUFFER)
            break
        except OSError:  # SO_RCVBUFFORCE needs CAP_NET_ADMIN; SO_RCVBUF is capped by rmem_max instead
            continue


class DnsServer:
    """Serves one Responder on UDP and TCP at the same ip:port (port 0 picks a free one)."""

    def __init__(self, responder: Responder, host: str, port: int) -> None:
        self.responder = responder
        self.host = host
        self.port = port
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.base_events.Server | None = None
        self._clients: set[asyncio.Task] = set()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._udp, _ = await loop.create_datagram_endpoint(lambda: _UdpProtocol(self.responder),
                                                           local_addr=(self.host, self.port))
        self.port = self._udp.get_extra_info("sockname")[1]
        _grow_receive_buffer(self._udp.get_extra_info("socket"))
        try:
            self._tcp = await asyncio.start_server(self._serve_tcp, self.host, self.port)
        except OSError:
            self._udp.close()
            raise

    async def stop(self) -> None:
        if self._udp is not None:
            self._udp.close()
            self._udp = None
        if self._tcp is not None:
            self._tcp.close()
            for task in list(self._clients):
                task.cancel()
            await asyncio.gather(*self._clients, return_exceptions=True)
            await self._tcp.wait_closed()
            self._tcp = None

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if len(self._clients) >= TCP_MAX_CLIENTS or task is None:
            writer.close()
            return
        self._clients.add(task)
        client = (writer.get_extra_info("peername") or ("",))[0]
        try:
            while True:
                head = await asyncio.wait_for(reader.readexactly(2), TCP_IDLE_TIMEOUT)
                (length,) = struct.unpack(">H", head)
                data = await asyncio.wait_for(reader.readexactly(length), TCP_IDLE_TIMEOUT)
                reply = self.responder.respond(data, "tcp", client)
                if reply is None:
                    break
                if reply.delay > 0:
                    await asyncio.sleep(reply.delay)
                writer.write(struct.pack(">H", len(reply.data)) + reply.data)
                await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.TimeoutError, ConnectionError):
            pass
        finally:
            self._clients.discard(task)
            writer.close()
