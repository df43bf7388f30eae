"""Bootstrap from DNS seeds, fixed seeds and one-shot seed nodes, as Bitcoin Core does (protocol.md §2.4).

The DNS query goes to the scenario's own seeder (an ip:port inside the sandbox), never to a system
resolver: a testnet must not send traffic anywhere else.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import random
import time
from dataclasses import dataclass, field
from typing import Any

from ..procutil import within
from ..wire.codec import NetAddr
from ..wire.messages import NODE_NETWORK, NODE_WITNESS
from . import dnswire

log = logging.getLogger(__name__)

MAX_IPS_PER_SEED = 32  # net.cpp ThreadDNSAddressSeed: at most 32 results per seed (older: 256)
SEEDS_PER_ROUND = 3  # net.cpp: query 3 seeds at a time unless addrman is empty
MANY_ADDRESSES = 1000  # net.cpp: with >= 1000 known addresses wait DNSSEEDS_DELAY_MANY_PEERS
ENOUGH_OUTBOUND = 2  # net.cpp: stop querying once 2 full-relay outbound peers are connected
SEED_AGE_MIN = 3 * 86400  # net.cpp: seed results get nTime 3 to 7 days ago
SEED_AGE_MAX = 7 * 86400
DNS_TIMEOUT = 5.0  # seconds per query; a slow (malicious) seeder must not stall the node forever
SEED_SERVICES = NODE_NETWORK | NODE_WITNESS  # Core assumes the default services for seed results
FLAGS_SUBDOMAIN = "x9"  # NODE_NETWORK|NODE_WITNESS, the subdomain Core asks for
SEED_RETRIES = 12  # testbed: rounds of asking the seeds again while the node has too few addresses


@dataclass(frozen=True)
class SeedServer:
    """A DNS seed reached at an explicit server address (host:port) for its zone."""

    ip: str
    port: int = 53
    zone: str = "seed.testnet."

    @classmethod
    def parse(cls, spec: str, default_zone: str = "seed.testnet.") -> "SeedServer":
        """`ip`, `ip:port` or `zone@ip:port`; ValueError saying what is wrong otherwise."""
        if not isinstance(spec, str):
            raise ValueError(f"expected a string, got {type(spec).__name__}")
        zone = default_zone
        if "@" in spec:
            zone, spec = spec.split("@", 1)
            if not zone.strip("."):
                raise ValueError("the zone before '@' is empty")
        ip, port = parse_seed_endpoint(spec, 53)
        return cls(ip=ip, port=port, zone=zone if zone.endswith(".") else zone + ".")


def parse_seed_endpoint(spec: str, default_port: int) -> tuple[str, int]:
    """`ip` or `ip:port` (IPv4; `[v6]:port` for IPv6) -> (ip, port); ValueError naming the problem."""
    if not isinstance(spec, str):
        raise ValueError(f"expected a string, got {type(spec).__name__}")
    if spec.startswith("["):
        host, _, rest = spec[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
    elif spec.count(":") == 1:
        host, port_text = spec.split(":")
    else:
        host, port_text = spec, ""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"{host!r} is not an IP address (a seed is reached by address, never by name)") from None
    if not port_text:
        return host, default_port
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"port {port_text!r} is not in 1..65535")
    return host, int(port_text)


async def query_seed(seed: SeedServer, timeout: float = DNS_TIMEOUT) -> list[str]:
    """A records for `x9.<zone>` from the seed: UDP, then TCP when truncated or unanswered.

    Each query gets `timeout` seconds of time the loop could look at it (procutil.within, testbed
    adaptation 9), not a wall-clock deadline: while thousands of nodes start in one host process
    its loop runs seconds behind, and a query whose timer fired late gave up on an answer that came
    a moment later, then asked again (35,148 answers reached a closed port when 10,000 nodes
    bootstrapped, docs/benchmarks.md). A seed that does not answer still fails. The messages are
    dnswire.py's; a datagram that answers another question is ignored."""
    qname = f"{FLAGS_SUBDOMAIN}.{seed.zone}"
    qid = random.getrandbits(16)
    asked = dnswire.question(qname)
    query = dnswire.encode_query(qid, qname)
    # EOFError (asyncio.IncompleteReadError): the seed closed the TCP connection unanswered, as our
    # seeder does beyond its client limit; it ended the whole bootstrap of ~180 of 1,000 nodes.
    # asyncio.TimeoutError is an OSError from 3.11 on, not on 3.10.
    unanswered = (OSError, EOFError, asyncio.TimeoutError, dnswire.DNSWireError)
    try:
        data = await within(timeout, _ask_udp(seed, query, qid, asked))
        if dnswire.is_truncated(data):
            data = await within(timeout, _ask_tcp(seed, query))
        ips = dnswire.a_records(data, qid, asked)
    except unanswered:
        try:
            ips = dnswire.a_records(await within(timeout, _ask_tcp(seed, query)), qid, asked)
        except unanswered as e:
            log.info("seed %s:%d unanswered: %r", seed.ip, seed.port, e)
            return []
    return ips[:MAX_IPS_PER_SEED]


class _Answer(asyncio.DatagramProtocol):
    """The first datagram from the seed that answers our question (the socket is connected to the
    seed, so the kernel drops datagrams from anyone else)."""

    def __init__(self, qid: int, asked: bytes) -> None:
        self.qid, self.asked = qid, asked
        self.done: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if not self.done.done() and dnswire.answers_to(data, self.qid, self.asked):
            self.done.set_result(data)

    def error_received(self, exc: Exception) -> None:  # e.g. ICMP port unreachable: refused
        if not self.done.done():
            self.done.set_exception(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_exception(exc or ConnectionError("the UDP socket closed"))


async def _ask_udp(seed: SeedServer, query: bytes, qid: int, asked: bytes) -> bytes:
    transport, answer = await asyncio.get_running_loop().create_datagram_endpoint(
        lambda: _Answer(qid, asked), remote_addr=(seed.ip, seed.port))
    try:
        transport.sendto(query)
        return await answer.done
    finally:
        transport.close()


async def _ask_tcp(seed: SeedServer, query: bytes) -> bytes:
    """The query over TCP: each message after its two-octet length (RFC 1035 §4.2.2)."""
    reader, writer = await asyncio.open_connection(seed.ip, seed.port)
    try:
        writer.write(len(query).to_bytes(2, "big") + query)
        length = int.from_bytes(await reader.readexactly(2), "big")
        return await reader.readexactly(length)
    finally:
        writer.close()


def stamp_seed_results(ips: list[str], port: int, now: float, rng: random.Random,
                       time_scale: float = 1.0) -> list[NetAddr]:
    """Seed results enter addrman as if last seen 3 to 7 days ago (net.cpp), in scaled time."""
    return [NetAddr(ip=ip, port=port, services=SEED_SERVICES,
                    time=int(now - rng.uniform(SEED_AGE_MIN, SEED_AGE_MAX) * time_scale)) for ip in ips]


@dataclass
class BootstrapState:
    queried: list[str] = field(default_factory=list)  # seeds asked, in order
    refused: list[str] = field(default_factory=list)  # seeds not asked: outside the dial allowlist
    learned: int = 0  # addresses added to addrman from seeds
    fixed_seeds_used: bool = False


async def run_bootstrap(node: Any, connman: Any, state: BootstrapState) -> None:
    """Core's ThreadDNSAddressSeed plus -seednode and fixed seeds, against the scenario's seeds.
    The fixed-seed fallback runs beside the DNS rounds, as in Core (it does not wait for them)."""
    for spec in connman.cfg.seednodes:  # -seednode: one-shot connections that only fetch addresses
        ip, port = _endpoint(spec, node.config.port)
        node.loop.create_task(_addr_fetch(node, ip, port))
    parts = {"DNS seeds": _dns_seeds(node, connman, state), "fixed seeds": _fixed_seeds(node, connman, state)}
    # each part goes on when the other fails, and a failure is logged: the task is never awaited
    for part, outcome in zip(parts, await asyncio.gather(*parts.values(), return_exceptions=True)):
        if isinstance(outcome, Exception):
            log.error("%s: bootstrap from %s failed", node.name, part, exc_info=outcome)


async def _dns_seeds(node: Any, connman: Any, state: BootstrapState) -> None:
    t, addrman = node.timers, connman.addrman
    seeds = [SeedServer.parse(s, connman.cfg.seed_zone) for s in connman.cfg.seeders]
    node.rng.shuffle(seeds)
    if not seeds:
        return
    if addrman.size() > 0:
        # With known addresses, give them a chance first (11 s, or 5 min with >= 1000).
        delay = t.dns_seed_delay_many if addrman.size() >= MANY_ADDRESSES else t.dns_seed_delay
        if await _wait_for_peers(node, delay):
            return
    per_round = len(seeds) if addrman.size() == 0 else SEEDS_PER_ROUND
    for attempt in range(SEED_RETRIES + 1):
        for i, seed in enumerate(seeds):
            if _full_outbound(node) >= ENOUGH_OUTBOUND:
                return
            if i and i % per_round == 0 and await _wait_for_peers(node, t.dns_seed_delay):
                return
            if not node.sandbox.allows(seed.ip):  # a query is traffic too: never outside the sandbox
                node.sandbox.refused += 1
                node.stats.sandbox_refused += 1
                state.refused.append(f"{seed.ip}:{seed.port}")
                continue
            state.queried.append(f"{seed.ip}:{seed.port}")
            try:
                ips = await query_seed(seed)
            except Exception:  # a bug in one query must not end the node's seeding
                log.exception("%s: query to seed %s:%d failed", node.name, seed.ip, seed.port)
                ips = []
            addrs = stamp_seed_results(ips, node.config.port, time.time(), node.rng, node.config.time_scale)
            state.learned += addrman.add(addrs, source_ip=seed.ip)
            connman.wake()
        # Core asks its next seeds until 2 full-relay peers are up (and ADDR_FETCHes a seed that gave
        # nothing). A testnet has one seeder, and a fresh one has crawled no one, or names the same
        # one or two nodes to everyone, whose inbound slots then fill. So while the node knows fewer
        # addresses than it has outbound slots, it asks again, the wait doubling up to the seed
        # delay, with jitter so a thousand nodes do not ask at once (testbed adaptation 12).
        if addrman.size() >= connman.cfg.outbound_full_relay + connman.cfg.block_relay:
            return
        wait = min(t.dns_seed_delay, t.dns_seed_retry * 2 ** attempt) * node.rng.uniform(1.0, 1.5)
        if await _wait_for_peers(node, wait):
            return


async def _fixed_seeds(node: Any, connman: Any, state: BootstrapState) -> None:
    """Hard-coded seeds after 60 s when addrman is still empty (net.cpp)."""
    if not connman.cfg.fixed_seeds:
        return
    await asyncio.sleep(node.timers.fixed_seed_delay)
    if connman.addrman.size() == 0:
        fixed = [_endpoint(s, node.config.port) for s in connman.cfg.fixed_seeds]
        connman.addrman.add([NetAddr(ip, port, SEED_SERVICES, int(time.time())) for ip, port in fixed],
                            source_ip="0.0.0.0")
        state.fixed_seeds_used = True
        connman.wake()


def _endpoint(spec: str, default_port: int) -> tuple[str, int]:
    return parse_seed_endpoint(spec, default_port)  # validated at config load (peering/peerconfig.py)


def _full_outbound(node: Any) -> int:
    return sum(1 for p in node.outbound_peers("outbound-full-relay") if p.verack_received)


async def _wait_for_peers(node: Any, seconds: float) -> bool:
    """Wait up to `seconds`; True as soon as 2 full-relay outbound peers are up."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if _full_outbound(node) >= ENOUGH_OUTBOUND:
            return True
        await asyncio.sleep(min(1.0, max(0.01, seconds / 20)))
    return _full_outbound(node) >= ENOUGH_OUTBOUND


async def _addr_fetch(node: Any, ip: str, port: int) -> None:
    try:
        await node.open_connection(ip, port, "addr-fetch")
    except (OSError, asyncio.TimeoutError, ConnectionError) as e:
        log.info("seednode %s:%d unreachable: %s", ip, port, e)
