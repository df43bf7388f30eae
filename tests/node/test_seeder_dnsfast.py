"""The seed answer's fast path (dnsfast.py) against dnslib's path, which stays the reference.

Two responders with the same nodes, mode and random seed answer the same query, one through
`respond` (the fast path where it applies) and one through dnslib alone: the bytes, the delay, the
counters and the logged answer must all be the same.
"""

from __future__ import annotations

import logging
import random
import types

import dns.flags
import dns.message
import dns.rcode
import pytest
from dnslib import DNSRecord
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness_node.seeder import SeederConfig
from harness_node.seeder import dnsserver
from harness_node.seeder.dnsfast import parse_simple
from harness_node.seeder.dnsserver import TCP_MAX_MESSAGE
from harness_node.seeder.modes import AnswerContext, GoodCache, make_mode
from harness_node.seeder.service import Seeder

ZONE = "seed.testnet."
V4 = [f"127.70.{i // 200}.{i % 200 + 1}" for i in range(300)]
V6 = [f"fd00::{i:x}" for i in range(1, 60)]
ATTACKERS = ["127.66.0.1", "127.66.0.2", "fd66::1"]
MODES = [("honest", {}), ("poison", {"addresses": ATTACKERS}), ("mixed", {"addresses": ATTACKERS, "fraction": 0.3}),
         ("slow", {"delay": 0.5}), ("empty", {}), ("nxdomain", {}), ("stale", {"addresses": ATTACKERS})]
NAMES = ["seed.testnet.", "x9.seed.testnet.", "x1.seed.testnet.", "x809.seed.testnet.", "X9.Seed.TESTNET.",
         "xd.SEED.testnet."]
# header bits a client may set that dnslib's reply() copies or clears: TC, RD, RA, Z, AD, CD
CLIENT_BITS = [0x0200, 0x0100, 0x0080, 0x0040, 0x0020, 0x0010]


def responder(seed: int, mode: str, params: dict) -> dnsserver.Responder:
    cfg = SeederConfig(zone=ZONE, dns_host="127.0.0.1", dns_port=0, control_port=0, crawl=False,
                       static_nodes=V4 + V6, cache_max_age=0.0)
    seeder = Seeder(cfg)
    r = seeder.responder
    rng = random.Random(seed)
    r.ctx = AnswerContext(seeder.source, GoodCache(seeder.source, 0.0, rng), rng)
    r.mode = make_mode(mode, params)
    return r


def query(name: str, qtype: str, qid: int, bits: int) -> bytes:
    wire = bytearray(dns.message.make_query(name, qtype).to_wire())
    wire[0:2] = qid.to_bytes(2, "big")
    flags = (int.from_bytes(wire[2:4], "big") & ~0x0100) | bits
    wire[2:4] = flags.to_bytes(2, "big")
    return bytes(wire)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32), mode=st.sampled_from(MODES), name=st.sampled_from(NAMES),
       qtype=st.sampled_from(["A", "AAAA"]), qid=st.integers(0, 0xFFFF),
       bits=st.lists(st.sampled_from(CLIENT_BITS), unique=True).map(sum), transport=st.sampled_from(["udp", "tcp"]),
       repeat=st.integers(1, 3))
def test_the_fast_path_gives_dnslibs_bytes_counts_and_log(caplog, monkeypatch, seed, mode, name, qtype, qid, bits,
                                                           transport, repeat):
    # a negative answer's SOA serial is the clock's second: two answers made either side of a
    # second's turn differed only there (seen once in CI), so both paths read one frozen second
    monkeypatch.setattr(dnsserver, "time", types.SimpleNamespace(time=lambda: 1_700_000_000.0))
    data = query(name, qtype, qid, bits)
    assert parse_simple(data) is not None  # the case under test: the fast path takes this query
    fast, slow = responder(seed, *mode), responder(seed, *mode)
    limit = fast.config.udp_payload if transport == "udp" else TCP_MAX_MESSAGE
    for _ in range(repeat):  # later answers reuse the question's authority bytes
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="harness_node.seeder.dns"):
            got = fast.respond(data, transport, "127.0.0.9")
            fast_log = [r.getMessage() for r in caplog.records]
            caplog.clear()
            want = slow._respond(data, limit, transport, "127.0.0.9")
            slow_log = [r.getMessage() for r in caplog.records]
        assert got == want
        assert fast_log == slow_log
    assert fast.counters.queries == slow.counters.queries
    assert fast.counters.records == slow.counters.records


def test_a_known_question_is_answered_without_dnslib(monkeypatch: pytest.MonkeyPatch):
    r = responder(1, "honest", {})
    data = query("x9.seed.testnet.", "A", 7, 0x0100)
    r.respond(data, "udp")  # learns the question's authority bytes through dnslib once

    def refuse(*_a, **_k):
        raise AssertionError("dnslib parsed a query the fast path should have answered")

    monkeypatch.setattr(DNSRecord, "parse", refuse)
    monkeypatch.setattr(DNSRecord, "pack", refuse)
    reply = dns.message.from_wire(r.respond(data, "udp").data)
    assert reply.id == 7 and reply.rcode() == dns.rcode.NOERROR
    assert reply.flags & dns.flags.AA and reply.flags & dns.flags.RD and not reply.flags & dns.flags.TC
    ips = [rd.address for rrset in reply.answer for rd in rrset]
    # 512 bytes: 12 header + 21 question + room for the larger authority record (SOA) + 16 per address
    assert len(ips) == (512 - 12 - 21 - r._authority_size) // 16 == 26 and set(ips) <= set(V4)
    assert [rrset.rdtype for rrset in reply.authority] == [dns.rdatatype.NS]


@pytest.mark.parametrize("why, data", [
    ("edns", dns.message.make_query("x9.seed.testnet.", "A", use_edns=0).to_wire()),
    ("any", dns.message.make_query("x9.seed.testnet.", "ANY").to_wire()),
    ("class", dns.message.make_query("x9.seed.testnet.", "A", rdclass="CH").to_wire()),
    ("response", dns.message.make_response(dns.message.make_query("x9.seed.testnet.", "A")).to_wire()),
    ("trailing", dns.message.make_query("x9.seed.testnet.", "A").to_wire() + b"\0"),
    ("pointer", dns.message.make_query("x9.seed.testnet.", "A").to_wire()[:12] + b"\xc0\x0c\x00\x01\x00\x01"),
    ("short", dns.message.make_query("x9.seed.testnet.", "A").to_wire()[:20]),
])
def test_anything_but_a_plain_a_or_aaaa_query_goes_to_dnslib(why, data):
    assert parse_simple(data) is None, why
