"""The seeder's crawler against fake peers on loopback, and its reliability bookkeeping."""

from __future__ import annotations

import asyncio
import random
import time

import dns.asyncquery
import dns.message
import pytest

from harness_node.net.client import ClientPeer
from harness_node.wire.codec import MAGIC_REGTEST, NetAddr
from harness_node.wire.messages import NODE_NETWORK, NODE_WITNESS, msg_addr, msg_version
from harness_node.seeder import Seeder, SeederConfig
from harness_node.seeder.reliability import GoodRule, NodeRecord

PORT = 18444
# Fake peers listen on the default port, so they get a /24 of their own, away from the per-process
# 127.64-213.*.* ranges that the node tests use (tests/node/conftest.py).
_B = random.randrange(256)
NET = f"127.{random.randrange(220, 250)}.{_B}"
OUTSIDE = f"127.250.{_B}.1"  # loopback, but outside the seeder's allowlist


class FakePeer:
    """Answers version/verack/getaddr like a node: its own version, then an addr with `gossip`."""

    def __init__(self, ip: str, port: int = PORT, version: int = 70016, services: int = NODE_NETWORK | NODE_WITNESS,
                 gossip: list[tuple[str, int]] | None = None, getaddr: str = "answer") -> None:
        self.ip, self.port, self.version, self.services = ip, port, version, services
        self.gossip = gossip or []
        # "answer"; "silent": never (a node in initial download has nothing to say); "garbage": a bad header
        self.getaddr = getaddr
        self.connections = 0
        self.user_agents: list[str] = []
        self._server: asyncio.base_events.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> "FakePeer":
        self._server = await asyncio.start_server(self._serve, self.ip, self.port)
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for w in list(self._writers):
                w.close()
            await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.add(writer)
        link = _FakeNodeLink(self)
        link.attach(reader, writer)  # the client peer on an accepted connection
        try:
            await link.wait_closed(3600)
        finally:
            self._writers.discard(writer)
            await link.close()


class _FakeNodeLink(ClientPeer):
    """One accepted connection of a FakePeer: version + verack in answer to a version, addr to getaddr."""

    def __init__(self, fake: FakePeer) -> None:
        super().__init__(MAGIC_REGTEST, version=fake.version, services=fake.services, start_height=100,
                         user_agent="/fake-peer/", negotiate=(), answer_pings=False)
        self.fake = fake

    def on_version(self, msg: msg_version) -> None:
        self.fake.user_agents.append(msg.user_agent)

    def on_getaddr(self, msg: object) -> None:
        if self.fake.getaddr == "silent":
            return
        if self.fake.getaddr == "garbage":
            self.writer.write(b"\x00" * 24)  # wrong magic: a header the seeder bans for
            return
        now = int(time.time())
        self.send(msg_addr([NetAddr(ip, port, NODE_NETWORK | NODE_WITNESS, now) for ip, port in self.fake.gossip]))


async def wait_until(predicate, timeout: float, what: str) -> float:
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.02)
    return time.monotonic() - start


def seeder_config(**kw) -> SeederConfig:
    base = dict(dns_host=f"{NET}.200", dns_port=0, control_port=0, default_port=PORT, seeds=[f"{NET}.1"],
                time_scale=0.002, timeout=2.0, allowlist=[f"{NET}.0/24"], concurrency=4)
    base.update(kw)
    return SeederConfig(**base)


def ring(n: int) -> list[FakePeer]:
    """n peers; peer i gossips peers i+1 and i+2, so only a crawl from peer 0 finds them all."""
    ips = [f"{NET}.{i + 1}" for i in range(n)]
    return [FakePeer(ip, gossip=[(ips[(i + 1) % n], PORT), (ips[(i + 2) % n], PORT)]) for i, ip in enumerate(ips)]


@pytest.mark.timeout(60)
@pytest.mark.asyncio
async def test_crawler_discovers_every_peer_from_one_entry_address_and_serves_only_good_ones():
    peers = ring(5)
    old = FakePeer(f"{NET}.50", version=60000)  # handshakes, but too old to be "good"
    peers[4].gossip.append((old.ip, PORT))
    for p in peers + [old]:
        await p.start()
    seeder = Seeder(seeder_config())
    try:
        await seeder.start()
        want = {(p.ip, PORT) for p in peers}
        await wait_until(lambda: seeder.db.good == want and old.connections > 0, 20, "all five peers good")
        assert all(ua == ["/harness-seeder:0.1/"] * len(ua) for ua in (p.user_agents for p in peers))
        assert (old.ip, PORT) in seeder.db.records and (old.ip, PORT) not in seeder.db.good
        q = dns.message.make_query("x9.seed.testnet.", "A")
        served = set()
        for _ in range(10):
            r = await dns.asyncquery.udp(q, seeder.config.dns_host, port=seeder.dns.port, timeout=3)
            served |= {rd.address for rrset in r.answer for rd in rrset}
        assert served and served <= {p.ip for p in peers}
    finally:
        await seeder.stop()
        for p in peers + [old]:
            await p.stop()


@pytest.mark.timeout(60)
@pytest.mark.asyncio
async def test_a_stopped_peer_stops_being_good_within_one_retry_interval():
    peers = ring(3)
    for p in peers:
        await p.start()
    cfg = seeder_config(time_scale=0.002)  # retry interval 1000 s -> 2 s
    seeder = Seeder(cfg)
    try:
        await seeder.start()
        await wait_until(lambda: len(seeder.db.good) == 3, 20, "three good peers")
        await peers[1].stop()
        took = await wait_until(lambda: (peers[1].ip, PORT) not in seeder.db.good, 20, "the stopped peer to drop out")
        assert took <= cfg.retry_seconds + cfg.timeout_seconds + 1.0
        assert {(peers[0].ip, PORT), (peers[2].ip, PORT)} <= seeder.db.good
        assert seeder.status()["good"] == sorted(f"{p.ip}:{PORT}" for p in (peers[0], peers[2]))
        # the crawler keeps retrying it: back up, good again
        await peers[1].start()
        await wait_until(lambda: (peers[1].ip, PORT) in seeder.db.good, 20, "the restarted peer to be good again")
    finally:
        await seeder.stop()
        for p in peers:
            await p.stop()


@pytest.mark.timeout(60)
@pytest.mark.asyncio
async def test_an_address_outside_the_allowlist_is_stored_but_never_dialled():
    peers = ring(3)
    peers[0].gossip.append((OUTSIDE, PORT))
    trap = FakePeer(OUTSIDE)  # a real listener there, so a dial would be seen, and stay on loopback
    for p in peers + [trap]:
        await p.start()
    seeder = Seeder(seeder_config())
    try:
        await seeder.start()
        await wait_until(lambda: len(seeder.db.good) == 3 and (OUTSIDE, PORT) in seeder.db.records, 20,
                         "the crawl to finish")
        # let every known node be retried at least once more, then check the dial log
        tries = seeder.db.attempts
        await wait_until(lambda: seeder.db.attempts >= tries + 6, 20, "two more crawl rounds")
        dialled = {(ip, port) for _, ip, port in seeder.crawler.attempts}
        assert dialled == {(p.ip, PORT) for p in peers}
        assert trap.connections == 0
        assert seeder.db.stats().undialable == 1 and seeder.db.stats().known == 4
    finally:
        await seeder.stop()
        for p in peers + [trap]:
            await p.stop()


@pytest.mark.timeout(60)
@pytest.mark.asyncio
async def test_a_peer_below_version_31900_is_banned():
    ancient = FakePeer(f"{NET}.1", version=31800)
    await ancient.start()
    seeder = Seeder(seeder_config())
    try:
        await seeder.start()
        await wait_until(lambda: (ancient.ip, PORT) in seeder.db.banned, 20, "the ban")
        assert (ancient.ip, PORT) not in seeder.db.records
        assert seeder.status()["banned"] == 1
        # banned for a week, scaled
        assert seeder.db.banned[(ancient.ip, PORT)] - time.time() > 0.9 * 7 * 86400 * 0.002
    finally:
        await seeder.stop()
        await ancient.stop()


@pytest.mark.timeout(60)
@pytest.mark.asyncio
async def test_a_node_with_nothing_to_say_is_good_at_its_handshake_and_holds_no_crawl_worker():
    # one worker, a 20 s addr wait: waiting each one out (sipa's thread) would take 80 s for four
    peers = [FakePeer(f"{NET}.{i + 1}", getaddr="silent") for i in range(4)]
    for p in peers:
        await p.start()
    seeder = Seeder(seeder_config(seeds=[f"{p.ip}" for p in peers], concurrency=1, timeout=20.0, time_scale=1.0))
    try:
        await seeder.start()
        took = await wait_until(lambda: len(seeder.db.good) == 4, 15, "four silent peers good")
        assert took < 10, took
        assert len(seeder.crawler._collecting) == 4  # each still waits for its addr answer, off the worker
    finally:
        await seeder.stop()
        for p in peers:
            await p.stop()
    assert not seeder.crawler._collecting and all(p.connections == 1 for p in peers)


@pytest.mark.timeout(60)
@pytest.mark.asyncio
async def test_a_bad_header_after_the_handshake_still_bans_the_node():
    rogue = FakePeer(f"{NET}.1", getaddr="garbage")
    await rogue.start()
    seeder = Seeder(seeder_config(time_scale=1.0, timeout=10.0))
    try:
        await seeder.start()
        await wait_until(lambda: (rogue.ip, PORT) in seeder.db.banned, 10, "the ban")
        assert (rogue.ip, PORT) not in seeder.db.good and (rogue.ip, PORT) not in seeder.db.records
        assert seeder.db.banned[(rogue.ip, PORT)] - time.time() > 0.9 * 100_000  # bitcoin.cpp's 100,000 s
    finally:
        await seeder.stop()
        await rogue.stop()


@pytest.mark.timeout(60)
@pytest.mark.asyncio
async def test_a_seed_that_starts_after_the_seeder_is_good_within_seconds_not_a_retry_interval():
    late = FakePeer(f"{NET}.1")
    seeder = Seeder(seeder_config(time_scale=1.0, timeout=5.0))  # retry interval 1000 s
    try:
        await seeder.start()
        await wait_until(lambda: seeder.db.attempts >= 1 and not seeder.db._in_flight, 10, "the first, refused probe")
        assert not seeder.db.good
        await asyncio.sleep(1.0)
        await late.start()
        took = await wait_until(lambda: (late.ip, PORT) in seeder.db.good, 30, "the late seed to be good")
        assert took < 20, took  # retried after 2, 4, 8 s
        assert seeder.db.attempts >= 2
    finally:
        await seeder.stop()
        await late.stop()


def test_a_node_never_seen_up_is_retried_soon_then_as_sipa(monkeypatch: pytest.MonkeyPatch):
    from harness_node.net.sandbox import Sandbox
    from harness_node.seeder.nodedb import BOOT_RETRY, BOOT_TRIES, NodeDb

    now = [1_000_000.0]
    db = NodeDb(RULE, 1000.0, Sandbox(["127.0.0.0/8"]), clock=lambda: now[0], rng=random.Random(1))
    db.add("127.9.0.1", PORT, force=True)
    waits = []
    for _ in range(BOOT_TRIES + 1):
        rec = db.next_to_try()
        assert rec is not None and db.next_to_try() is None  # nothing else is due meanwhile
        db.record_failure(rec.endpoint)
        waits.append(db.seconds_until_due())
        now[0] += waits[-1]
    assert waits == [min(1000.0, BOOT_RETRY * 2 ** i) for i in range(BOOT_TRIES)] + [1000.0]
    # a node once good that fails is retried as sipa does
    db2 = NodeDb(RULE, 1000.0, Sandbox(["127.0.0.0/8"]), clock=lambda: now[0], rng=random.Random(1))
    db2.add("127.9.0.2", PORT, force=True)
    ep = db2.next_to_try().endpoint
    db2.record_success(ep, 70016, "/x/", 0, NODE_NETWORK)
    now[0] += 1000.0
    assert db2.next_to_try().endpoint == ep
    db2.record_failure(ep)
    assert db2.seconds_until_due() == 1000.0


def test_failures_before_a_nodes_first_answer_are_not_held_against_it():
    """Probes refused while a node starts (its host process was slower than the seeder) leave no
    mark: at its first answer it is good and stays good through a later success, as a node first
    probed when it was up would be. sipa keeps them, and the node stays "not good" for long."""
    from harness_node.net.sandbox import Sandbox
    from harness_node.seeder.nodedb import NodeDb

    now = [1_000_000.0]
    db = NodeDb(RULE, 1000.0, Sandbox(["127.0.0.0/8"]), clock=lambda: now[0], rng=random.Random(1))
    db.add("127.9.0.3", PORT, force=True)
    for _ in range(3):
        rec = db.next_to_try()
        db.record_failure(rec.endpoint)
        now[0] += db.seconds_until_due()
    rec = db.next_to_try()
    db.record_success(rec.endpoint, 70016, "/x/", 0, NODE_NETWORK)
    assert rec.endpoint in db.good
    assert (rec.total, rec.success) == (1, 1)
    now[0] += 1000.0
    db.record_success(db.next_to_try().endpoint, 70016, "/x/", 0, NODE_NETWORK)
    assert rec.endpoint in db.good
    # a node that answered once and then fails is judged on its whole history, as sipa does
    now[0] += 1000.0
    db.record_failure(db.next_to_try().endpoint)
    assert (rec.total, rec.success) == (3, 2)


async def served(seeder: Seeder, queries: int = 12) -> set[str]:
    """The addresses a dozen real UDP queries for x9 got."""
    q = dns.message.make_query("x9.seed.testnet.", "A")
    got: set[str] = set()
    for _ in range(queries):
        r = await dns.asyncquery.udp(q, seeder.config.dns_host, port=seeder.dns.port, timeout=3)
        got |= {rd.address for rrset in r.answer for rd in rrset}
    return got


@pytest.mark.timeout(60)
@pytest.mark.asyncio
@pytest.mark.parametrize("warmup_share", [0.0, 0.9])
async def test_a_warm_up_holds_the_answers_until_the_nodes_the_seeder_tried_answer(warmup_share: float):
    """Testbed adaptation 13. Two of eight seeds are up when the seeder starts (their host process
    started first). Without a warm-up (sipa) the seeder names those two to every node asking at
    once; with one, it names no one while most nodes it tried were refused, and once the other six
    are up and answer its retries it names them too."""
    early = [FakePeer(f"{NET}.{i}") for i in (1, 2)]
    late = [FakePeer(f"{NET}.{i}") for i in range(3, 9)]
    for p in early:
        await p.start()
    seeder = Seeder(seeder_config(time_scale=1.0, timeout=5.0, seeds=[p.ip for p in early + late],
                                  warmup_share=warmup_share, warmup_seconds=60.0))
    try:
        await seeder.start()
        await wait_until(lambda: len(seeder.db.judged) == 8 and not seeder.db._in_flight, 10, "every seed's first probe")
        assert seeder.db.good == {(p.ip, PORT) for p in early} and len(seeder.db.seen_up) == 2
        first = await served(seeder)
        if not warmup_share:
            assert first and first <= {p.ip for p in early} and seeder.status()["warm"]
            return
        assert first == set() and not seeder.status()["warm"]
        for p in late:
            await p.start()
        await wait_until(lambda: seeder.source.warm, 20, "the late seeds to answer a retry")  # after 2 s
        later = await served(seeder)
        assert later & {p.ip for p in late} and later <= {p.ip for p in early + late}
    finally:
        await seeder.stop()
        for p in early + late:
            await p.stop()


@pytest.mark.timeout(60)
@pytest.mark.asyncio
async def test_a_warm_up_ends_after_warmup_seconds_even_if_nodes_stay_down():
    """Nodes down for good (a scenario may start some stopped) hold the answers back no longer than
    warmup_seconds: then the seeder serves the good ones it has."""
    early = FakePeer(f"{NET}.1")
    await early.start()
    seeder = Seeder(seeder_config(time_scale=1.0, timeout=5.0, seeds=[early.ip, f"{NET}.2", f"{NET}.3"],
                                  warmup_share=0.9, warmup_seconds=1.5))
    try:
        await seeder.start()
        start = time.monotonic()
        await wait_until(lambda: (early.ip, PORT) in seeder.db.good and len(seeder.db.judged) == 3, 10, "first probes")
        assert await served(seeder, 2) == set()
        await wait_until(lambda: seeder.source.warm, 10, "the warm-up to run out")
        assert time.monotonic() - start >= 1.0
        assert await served(seeder, 2) == {early.ip}
    finally:
        await seeder.stop()
        await early.stop()


# --- reliability rules (pure) ------------------------------------------------------------------

RULE = GoodRule(default_port=PORT, time_scale=1.0)


def probed(results: list[bool], gap: float = 1000.0, **kw) -> NodeRecord:
    rec = NodeRecord("127.0.0.1", PORT, services=NODE_NETWORK, client_version=70016, **kw)
    now = 1_000_000.0
    for ok in results:
        now += gap
        rec.record(ok, now, 1000.0, RULE)
    return rec


def test_a_young_node_is_good_with_half_its_tries_successful():
    assert probed([True]).is_good(RULE)
    assert probed([True, False]).is_good(RULE)
    assert not probed([False, True, False]).is_good(RULE)


def test_an_old_node_needs_a_reliable_window_with_enough_samples():
    assert probed([True] * 20).is_good(RULE)
    assert not probed([True, False] * 10).is_good(RULE)  # 50 % beats no window threshold (> 0.55 at most 1 d)
    flaky_then_fine = probed([False] * 10 + [True] * 20, gap=1000.0)
    assert flaky_then_fine.stats["2h"].reliability > 0.85 and flaky_then_fine.is_good(RULE)


def test_port_services_version_and_height_gate_goodness():
    rec = probed([True])
    assert rec.is_good(RULE)
    rec.services = NODE_WITNESS
    assert not rec.is_good(RULE)
    rec.services, rec.client_version = NODE_NETWORK, 70000
    assert not rec.is_good(RULE)
    rec.client_version, rec.height = 70016, 5
    assert not rec.is_good(GoodRule(default_port=PORT, required_height=10))
    assert not rec.is_good(GoodRule(default_port=PORT + 1))


def test_persistent_failure_earns_a_ban_scaled_by_time_scale():
    dead = probed([False] * 100, gap=3600.0)  # 100 h of failures: the 1 d window is all failure
    assert dead.ban_seconds(RULE) > 0
    scaled = GoodRule(default_port=PORT, time_scale=0.01)
    assert dead.ban_seconds(scaled) == pytest.approx(dead.ban_seconds(RULE) * 0.01)
    assert probed([True] * 40, gap=3600.0).ban_seconds(RULE) == 0


def test_decayed_uptime_windows_forget_at_their_own_speed():
    rec = probed([True] * 30, gap=600.0)
    before = {name: s.reliability for name, s in rec.stats.items()}
    rec.record(False, rec.our_last_try + 4 * 3600, 1000.0, RULE)  # one failure after 4 h of silence
    after = {name: s.reliability for name, s in rec.stats.items()}
    assert after["2h"] < 0.15 * before["2h"]  # 4 h is two 2 h time constants: e^-2 of it is left
    assert after["1d"] > 0.8 * before["1d"] and after["1m"] > 0.99 * before["1m"]
