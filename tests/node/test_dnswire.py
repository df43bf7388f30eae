"""The node's DNS seed query on the wire (addr/dnswire.py), checked against two independent DNS
implementations: dnslib (the seeder's) reads our query, dnspython and dnslib write the answers we
read, with name compression, other record types and error codes; every cut or corrupted answer is
refused with DNSWireError, never another exception. And over real UDP: a datagram that answers
another question is ignored, the seed's answer is still taken."""

from __future__ import annotations

import asyncio
import random
import socket
import threading

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest
from dnslib import AAAA, CNAME, QTYPE, RR, A, DNSRecord

from harness_node.addr import dnswire
from harness_node.addr.bootstrap import SeedServer, query_seed

from conftest import next_ip

QNAME = "x9.seed.testnet."


def dnspython_answer(query: bytes, ips: list[str], rcode: int = 0) -> bytes:
    response = dns.message.make_response(dns.message.from_wire(query))
    response.set_rcode(rcode)
    if ips:
        response.answer.append(dns.rrset.from_text(QNAME, 60, "IN", "A", *ips))
    return response.to_wire()


def test_our_query_is_what_dnslib_reads():
    wire = dnswire.encode_query(0xBEEF, QNAME)
    parsed = DNSRecord.parse(wire)
    assert parsed.header.id == 0xBEEF and parsed.header.qr == 0 and parsed.header.rd == 1
    assert [(str(q.qname), q.qtype) for q in parsed.questions] == [(QNAME, QTYPE.A)]
    assert wire[2:] == DNSRecord.question(QNAME, "A").pack()[2:]  # byte for byte after the (random) id


def test_the_a_records_of_a_dnspython_answer_are_read_as_dnspython_reads_them():
    query = dnswire.encode_query(7, QNAME)
    ips = [f"127.{20 + i}.{i}.1" for i in range(29)]
    answer = dnspython_answer(query, ips)
    theirs = [r.address for rrset in dns.message.from_wire(answer).answer for r in rrset]
    assert sorted(theirs) == sorted(ips)
    assert dnswire.a_records(answer, 7, dnswire.question(QNAME)) == theirs
    assert not dnswire.is_truncated(answer)


def test_other_records_are_skipped_and_compressed_names_read():
    query = dnswire.encode_query(9, QNAME)
    reply = DNSRecord.parse(query).reply()  # dnslib compresses each owner name to a pointer
    reply.add_answer(RR("alias.seed.testnet.", QTYPE.CNAME, rdata=CNAME("other.seed.testnet."), ttl=5))
    reply.add_answer(RR(QNAME, QTYPE.A, rdata=A("127.9.0.1"), ttl=60))
    reply.add_answer(RR(QNAME, QTYPE.AAAA, rdata=AAAA("fd00::1"), ttl=60))
    reply.add_answer(RR(QNAME, QTYPE.A, rdata=A("127.9.0.2"), ttl=60))
    assert dnswire.a_records(reply.pack(), 9, dnswire.question(QNAME)) == ["127.9.0.1", "127.9.0.2"]


def test_an_error_code_is_no_addresses_and_another_question_is_refused():
    query = dnswire.encode_query(11, QNAME)
    asked = dnswire.question(QNAME)
    assert dnswire.a_records(dnspython_answer(query, [], dns.rcode.NXDOMAIN), 11, asked) == []
    answer = dnspython_answer(query, ["127.1.2.3"])
    with pytest.raises(dnswire.DNSWireError, match="not a response"):
        dnswire.a_records(answer, 12, asked)  # another id
    with pytest.raises(dnswire.DNSWireError, match="not a response"):
        dnswire.a_records(answer, 11, dnswire.question("x9.other.testnet."))
    with pytest.raises(dnswire.DNSWireError, match="not a response"):
        dnswire.a_records(query, 11, asked)  # the query itself: QR unset
    upper = answer[:12] + answer[12:12 + len(asked)].upper() + answer[12 + len(asked):]
    assert dnswire.a_records(upper, 11, asked) == ["127.1.2.3"]  # names compare without case


def test_a_truncated_flag_is_seen():
    query = dnswire.encode_query(5, QNAME)
    response = dns.message.make_response(dns.message.from_wire(query))
    response.flags |= dns.flags.TC
    assert dnswire.is_truncated(response.to_wire())


def test_every_cut_and_corruption_of_an_answer_is_a_wire_error_or_addresses():
    query = dnswire.encode_query(3, QNAME)
    asked = dnswire.question(QNAME)
    answer = dnspython_answer(query, [f"127.5.{i}.1" for i in range(8)])
    for cut in range(len(answer)):
        try:
            got = dnswire.a_records(answer[:cut], 3, asked)
        except dnswire.DNSWireError:
            continue
        assert len(got) < 8, cut  # a cut answer never reads as whole
    rng = random.Random(1)
    for _ in range(3000):
        bad = bytearray(answer)
        for _ in range(rng.randint(1, 6)):
            bad[rng.randrange(12 + len(asked), len(bad))] = rng.randrange(256)
        try:
            got = dnswire.a_records(bytes(bad), 3, asked)
        except dnswire.DNSWireError:
            continue
        assert all(socket.inet_aton(ip) for ip in got)


def test_names_that_cannot_be_encoded_are_refused():
    with pytest.raises(dnswire.DNSWireError, match="label"):
        dnswire.encode_name("a" * 64 + ".seed.")
    with pytest.raises(dnswire.DNSWireError, match="longer than 255"):
        dnswire.encode_name(".".join(["abcdefgh"] * 40))
    assert dnswire.encode_name(".") == b"\x00"


def test_a_datagram_answering_another_question_is_ignored_over_real_udp():
    """A seed (real UDP socket) that first answers with another id, then with the right one: the
    query reads the right answer and does not fall back to TCP (no listener here)."""
    ip = next_ip()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((ip, 0))

    def serve() -> None:
        data, peer = sock.recvfrom(512)
        qid = int.from_bytes(data[:2], "big")
        wrong = dnspython_answer(data, ["127.66.6.6"])
        sock.sendto(((qid + 1) % 65536).to_bytes(2, "big") + wrong[2:], peer)
        sock.sendto(dnspython_answer(data, ["127.66.0.1", "127.66.0.2"]), peer)

    threading.Thread(target=serve, daemon=True).start()
    try:
        ips = asyncio.run(query_seed(SeedServer(ip, sock.getsockname()[1]), timeout=2.0))
    finally:
        sock.close()
    assert sorted(ips) == ["127.66.0.1", "127.66.0.2"]  # a set to dnspython, which wrote the answer
