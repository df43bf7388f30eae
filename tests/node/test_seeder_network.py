"""The DNS seeder against thirty live nodes of ours, the parts its own tests did with fake peers:
the crawler finds the whole network from one entry address through the nodes' addr gossip, drops a
node that stops, and fresh nodes that know only the seeder take their first peers from its answer,
honest, poisoned or mixed, and follow a mode switched at runtime through the control API.

All nodes listen on one port (DNS answers carry no port) and each has a /16 of its own, so the
netgroup rules act as on a real network: honest nodes on 127.100-129.X.1, fresh nodes on
127.140-199.X.1, attacker listeners on 127.200-207.X.1 (X per process, as in test_network50.py).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import socket
import time
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import dns.message
import dns.query
import pytest

from harness_node.config import NodeConfig
from harness_node.node import Node
from harness_node.net.peer import Peer
from harness_node.seeder.config import SeederConfig
from harness_node.seeder.service import Seeder, SeederThread

from conftest import LoopThread, next_ip, wait_until

pytestmark = pytest.mark.slow

N_NODES = 30
N_ATTACKERS = 8  # one /16 each, so a poisoned node can fill its 8 full-relay slots with them
PORT = 28555  # not test_network50's 28444: the two may run side by side
TIME_SCALE = 0.05  # nodes: 500 ms connect loop -> 25 ms, 30 s addr flush -> 1.5 s
# Core caches its getaddr reply for 21-27 h; a long-running network has refreshed it many times
# since its table filled. One real second gives the crawler that network's view within the test.
GETADDR_CACHE_SECONDS = 1.0
# Seeder clock: sipa's "getaddr again after 24 h" becomes 1.7 s, so a node whose first reply was
# thin is asked again at its next probe. Membership of the good set does not depend on the scale:
# a node that turned good stays good until a probe fails (db.cpp Good_/Bad_).
SEEDER_TIME_SCALE = 2e-5
PROBE_TIMEOUT = 2.5  # handshake + getaddr wait per probe (sipa: 30 s); generous for a loaded CI box
CRAWL_RETRY = 3.0  # test 1: a second getaddr round for nodes the first round missed
DROP_RETRY = 1.0  # test 2: every node re-probed about once a second
ANSWER_RETRY = 2.0  # tests 3-5: a probe that failed on a loaded machine is soon tried again
SETTLED_ADDRMAN = 10  # a getaddr reply is 23 % of the table: >= 2 addresses per reply
SEED_ZONE = "seed.testnet."
AUTOMATIC_KINDS = ("outbound-full-relay", "block-relay")
_X = 20 + os.getpid() % 200
_fresh_octets = itertools.count(140)


def honest_ip(i: int) -> str:
    return f"127.{100 + i}.{_X}.1"


def attacker_ip(i: int) -> str:
    return f"127.{200 + i}.{_X}.1"


HONEST = {honest_ip(i) for i in range(N_NODES)}
ATTACKERS = [attacker_ip(i) for i in range(N_ATTACKERS)]


def free_udp_port(ip: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((ip, 0))
        return s.getsockname()[1]


class FreshNode(Node):
    """A node that logs every outbound handshake in order: (kind, peer ip, who told it the address).

    The log is taken when the peer's version arrives, so feelers (dropped right after it) count too.
    """

    def __init__(self, config: NodeConfig) -> None:
        super().__init__(config)
        self.outbound_log: list[tuple[str, str, str | None]] = []

    def on_version(self, peer: Peer, listen_port: int = 0) -> None:
        super().on_version(peer, listen_port)
        if not peer.inbound:
            info = self.connman.addrman.find(peer.ip, peer.port)
            self.outbound_log.append((peer.kind, peer.ip, info.source if info is not None else None))


# --- fixtures ----------------------------------------------------------------------------------


@pytest.fixture
def honest(lt: LoopThread) -> Iterator[list[Node]]:
    """Thirty nodes in a ring with chords (`addnode`), plus the automatic slots they fill from what
    gossip teaches them. No seeder: nobody outside the network knows them yet."""
    nodes = [Node(NodeConfig(
        name=f"h{i}", bind=honest_ip(i), port=PORT, time_scale=TIME_SCALE, seed=i,
        addnode=[f"{honest_ip((i + 1) % N_NODES)}:{PORT}", f"{honest_ip((i + 7) % N_NODES)}:{PORT}"],
        timers={"getaddr_cache": GETADDR_CACHE_SECONDS, "getaddr_cache_jitter": 0.0}))
        for i in range(N_NODES)]
    try:
        for node in nodes:  # every listener up before anyone dials
            lt.run(node.start())
        for node in nodes:
            lt.eval(node.start_dialling)
        yield nodes
    finally:
        for node in nodes:
            lt.run(node.stop())


@pytest.fixture
def attackers(lt: LoopThread) -> Iterator[list[Node]]:
    """Plain nodes of ours that only listen: whoever the seeder sends to them talks to them alone."""
    nodes = [Node(NodeConfig(name=f"a{i}", bind=ip, port=PORT, time_scale=TIME_SCALE, seed=1000 + i))
             for i, ip in enumerate(ATTACKERS)]
    try:
        for node in nodes:
            lt.run(node.start())
        yield nodes
    finally:
        for node in nodes:
            lt.run(node.stop())


@pytest.fixture
def run_seeder() -> Iterator[Callable[..., SeederThread]]:
    started: list[SeederThread] = []

    def start(**settings: Any) -> SeederThread:
        ip = next_ip()
        seeder = SeederThread(SeederConfig(
            dns_host=ip, dns_port=free_udp_port(ip), control_port=0, default_port=PORT,
            time_scale=SEEDER_TIME_SCALE, timeout=PROBE_TIMEOUT, **settings))
        started.append(seeder)
        seeder.start()
        return seeder

    yield start
    for seeder in started:
        seeder.stop()


@pytest.fixture
def fresh(lt: LoopThread) -> Iterator[Callable[[SeederThread], FreshNode]]:
    """Factory: a new node whose only source of addresses is the given seeder."""
    made: list[FreshNode] = []

    def start(seeder: SeederThread) -> FreshNode:
        config = seeder.seeder.config
        node = FreshNode(NodeConfig(
            name=f"fresh{len(made)}", bind=f"127.{next(_fresh_octets)}.{_X}.1", port=PORT, time_scale=TIME_SCALE,
            seed=2000 + len(made), peering={"seeders": [f"{SEED_ZONE}@{config.dns_host}:{seeder.seeder.dns.port}"]}))
        made.append(node)
        lt.run(node.start())
        lt.eval(node.start_dialling)
        return node

    yield start
    for node in made:
        lt.run(node.stop())


# --- helpers -----------------------------------------------------------------------------------


def good_ips(seeder: SeederThread) -> set[str]:
    return {ep.rsplit(":", 1)[0] for ep in seeder.call(lambda: seeder.seeder.status()["good"])}


def probe_counts(seeder: SeederThread) -> dict[str, int]:
    return seeder.call(lambda: {r.ip: r.total for r in seeder.seeder.db.records.values()})


def seeded_with_all_honest(run_seeder: Callable[..., SeederThread], **settings: Any) -> SeederThread:
    seeder = run_seeder(seeds=[f"{ip}:{PORT}" for ip in sorted(HONEST)], retry_interval=ANSWER_RETRY, **settings)
    wait_until(lambda: good_ips(seeder) == HONEST, timeout=20, what="the seeder to find all 30 honest nodes good")
    return seeder


def dns_answer(seeder: SeederThread) -> list[str]:
    query = dns.message.make_query(f"x9.{SEED_ZONE}", "A")
    reply = dns.query.udp(query, seeder.seeder.config.dns_host, port=seeder.seeder.dns.port, timeout=2)
    return [r.address for rrset in reply.answer for r in rrset]


def automatic_outbound(node: Node) -> int:
    """Handshaken full-relay and block-relay outbound peers (not feelers, which leave at once)."""
    return sum(1 for p in node.outbound_peers() if p.kind in AUTOMATIC_KINDS and p.verack_received)


def wait_outbound(lt: LoopThread, node: FreshNode, n: int = 8) -> list[tuple[str, str, str | None]]:
    """Wait until `node` has `n` automatic outbound peers; return its outbound log."""
    try:
        lt.wait(lambda: automatic_outbound(node) >= n, timeout=15, what=f"{node.name} to open {n} outbound links")
    except AssertionError as e:
        state = lt.eval(lambda: (list(node.outbound_log), list(node.disconnects), node.connman.status()))
        raise AssertionError(f"{e}; outbound log, disconnects, connman: {state}") from None
    return lt.eval(lambda: list(node.outbound_log))


def seed_answer_in_addrman(lt: LoopThread, node: Node, seeder: SeederThread) -> set[str]:
    """The addresses this node learnt from the seeder's DNS answer (addrman keeps each one's source)."""
    seeder_ip = seeder.seeder.config.dns_host
    lt.wait(lambda: node.bootstrap.learned > 0, timeout=10, what=f"{node.name} to learn addresses from the seeder")
    return lt.eval(lambda: {ip for ip in HONEST | set(ATTACKERS)
                            if (info := node.connman.addrman.find(ip, PORT)) is not None and info.source == seeder_ip})


def post_mode(seeder: SeederThread, body: dict[str, Any]) -> dict[str, Any]:
    config = seeder.seeder.config
    request = urllib.request.Request(
        f"http://{config.control_host}:{seeder.seeder.control.port}/mode", data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 200
        return json.loads(response.read())


def get_status(seeder: SeederThread) -> dict[str, Any]:
    config = seeder.seeder.config
    with urllib.request.urlopen(f"http://{config.control_host}:{seeder.seeder.control.port}/status",
                                timeout=5) as response:
        return json.loads(response.read())


# --- 1. crawling -------------------------------------------------------------------------------


def test_crawler_given_one_entry_address_finds_all_thirty_nodes_through_their_gossip(lt, honest, run_seeder):
    lt.wait(lambda: min(n.connman.addrman.size() for n in honest) >= SETTLED_ADDRMAN, timeout=20,
            what=f"every node to learn {SETTLED_ADDRMAN} addresses through gossip")
    entry = honest_ip(0)
    started = time.monotonic()
    seeder = run_seeder(seeds=[f"{entry}:{PORT}"], retry_interval=CRAWL_RETRY)
    wait_until(lambda: good_ips(seeder) == HONEST, timeout=20, what="the crawler to mark all 30 nodes good")
    elapsed = time.monotonic() - started
    print(f"crawler found and marked good all {N_NODES} nodes from one entry address in {elapsed:.2f} s")

    assert seeder.seeder.config.seeds == [f"{entry}:{PORT}"]
    dialled = {ip for _, ip, _ in seeder.call(lambda: list(seeder.seeder.crawler.attempts))}
    assert dialled == HONEST  # it handshook with every node it found, and with nothing else
    status = seeder.call(seeder.seeder.status)
    assert status["known"] == N_NODES and status["banned"] == 0
    assert set(dns_answer(seeder)) <= HONEST


# --- 2. losing a node --------------------------------------------------------------------------


def test_a_stopped_node_leaves_the_good_set_within_one_retry_and_the_others_stay_good(lt, honest, run_seeder):
    seeder = run_seeder(seeds=[f"{ip}:{PORT}" for ip in sorted(HONEST)], retry_interval=DROP_RETRY)
    wait_until(lambda: good_ips(seeder) == HONEST and min(probe_counts(seeder).values()) >= 3, timeout=20,
               what="every node good after three probes each")

    victim = honest[7]
    lt.run(victim.stop())
    stopped = time.monotonic()
    window = DROP_RETRY + PROBE_TIMEOUT
    wait_until(lambda: victim.config.bind not in good_ips(seeder), timeout=window + 5,
               what="the stopped node to leave the good set")
    lost_after = time.monotonic() - stopped
    print(f"stopped node left the good set after {lost_after:.2f} s (retry interval {DROP_RETRY} s)")
    assert lost_after <= window + 1.0

    others = HONEST - {victim.config.bind}
    before = probe_counts(seeder)
    answers: list[str] = []

    def others_probed_twice_more_and_still_good() -> bool:
        assert good_ips(seeder) == others, "a running node left the good set"
        answers.extend(dns_answer(seeder))
        counts = probe_counts(seeder)
        return all(counts[ip] >= before[ip] + 2 for ip in others)

    wait_until(others_probed_twice_more_and_still_good, timeout=10, what="two more probes of every running node")
    assert answers and victim.config.bind not in answers
    assert set(answers) <= others


# --- 3. bootstrapping from the seeder ----------------------------------------------------------


def test_nodes_that_know_only_the_seeder_take_their_first_peers_from_its_answer(
        lt, honest, attackers, run_seeder, fresh):
    seeder = seeded_with_all_honest(run_seeder, mode="honest")  # attackers listen, nobody names them
    seeder_ip = seeder.seeder.config.dns_host
    newcomers = [fresh(seeder) for _ in range(4)]
    for node in newcomers:
        log = wait_outbound(lt, node)
        assert lt.eval(lambda: node.bootstrap.queried) == [f"{seeder_ip}:{seeder.seeder.dns.port}"]
        assert lt.eval(lambda: node.bootstrap.learned) > 0
        kind, first_ip, source = log[0]
        assert kind == "outbound-full-relay"
        assert first_ip in HONEST and source == seeder_ip, log  # nothing else was known to dial
        network = HONEST | {n.config.bind for n in newcomers}  # newcomers may learn of each other
        assert all(ip in network for _, ip, _ in log), log  # honest peers only
        # most of the early peers are straight from the answer; the rest came in by gossip from them
        assert sum(src == seeder_ip for _, _, src in log[:8]) >= 4, log


# --- 4. answer modes ---------------------------------------------------------------------------


def test_a_poisoned_seeder_gives_a_fresh_node_only_attacker_peers(lt, honest, attackers, run_seeder, fresh):
    seeder = seeded_with_all_honest(run_seeder, mode="poison", mode_params={"addresses": ATTACKERS})
    victim = fresh(seeder)
    answer = seed_answer_in_addrman(lt, victim, seeder)
    # all eight came in the answer; one may lose its new-table slot to another (p ~ 1 %)
    assert answer <= set(ATTACKERS) and len(answer) >= N_ATTACKERS - 1, answer
    log = wait_outbound(lt, victim, len(answer))  # one per netgroup: a link to each attacker it knows
    assert [ip for _, ip, _ in log if ip not in ATTACKERS] == [], log
    assert {ip for _, ip, _ in log} == answer
    assert lt.eval(lambda: victim.connman.addrman.size()) == len(answer)  # not one honest address reached it
    assert lt.eval(lambda: {p.ip for p in victim.peers.values()}) <= set(ATTACKERS)


def test_a_mixed_seeder_gives_fresh_nodes_attacker_and_honest_peers(lt, honest, attackers, run_seeder, fresh):
    seeder = seeded_with_all_honest(run_seeder, mode="mixed", mode_params={"addresses": ATTACKERS, "fraction": 0.5})
    newcomers = [fresh(seeder) for _ in range(3)]
    seen_attackers = seen_honest = 0
    for node in newcomers:
        answer = seed_answer_in_addrman(lt, node, seeder)
        share = len(answer & set(ATTACKERS)) / len(answer)
        assert 0.4 <= share <= 0.6, answer  # half of every answer is the attackers'
        log = wait_outbound(lt, node)
        n_att = sum(ip in ATTACKERS for _, ip, _ in log)
        assert n_att < len(log), log  # never eclipsed: some honest peer among the first
        seen_attackers += n_att
        seen_honest += len(log) - n_att
    assert seen_attackers > 0 and seen_honest > 0


# --- 5. switching mode at runtime --------------------------------------------------------------


def test_switching_the_mode_over_the_control_api_changes_what_the_next_fresh_node_gets(
        lt, honest, attackers, run_seeder, fresh):
    seeder = seeded_with_all_honest(run_seeder, mode="honest")
    before = fresh(seeder)
    assert not any(ip in ATTACKERS for _, ip, _ in wait_outbound(lt, before))

    assert post_mode(seeder, {"mode": "poison", "addresses": ATTACKERS}) == \
        {"mode": "poison", "params": {"addresses": ATTACKERS}}
    assert get_status(seeder)["mode"] == "poison"
    poisoned = fresh(seeder)
    answer = seed_answer_in_addrman(lt, poisoned, seeder)
    assert answer <= set(ATTACKERS)
    assert all(ip in ATTACKERS for _, ip, _ in wait_outbound(lt, poisoned, len(answer)))

    assert post_mode(seeder, {"mode": "honest"})["mode"] == "honest"
    after = fresh(seeder)
    assert not any(ip in ATTACKERS for _, ip, _ in wait_outbound(lt, after))


# --- bugs these tests turned up (the lead may move them next to their modules' tests) ----------


def test_crawler_stop_ends_workers_woken_in_the_same_loop_turn():
    """Seeder.stop() hung for 10 s after test 2 about one run in three: crawler workers idle in
    wait_for(event.wait(), t) that a finished probe's _notify() woke in the turn stop() cancelled
    them swallowed the cancel (Python < 3.12) and kept crawling. Fixed in Crawler.stop()."""

    async def scenario() -> None:
        seeder = Seeder(SeederConfig(dns_host="127.0.0.1", dns_port=0, control_port=0, retry_interval=60.0))
        seeder.db.add("127.9.9.9", PORT, services=9, seen=1.0)
        rec = seeder.db.next_to_try()
        seeder.db.record_success(rec.endpoint, 70016, "/x/", 0, 9)  # tracked, next due in 60 s
        await seeder.crawler.start()
        await asyncio.sleep(0.05)  # every worker idles with a 60 s timeout
        seeder.crawler._notify()  # woken, as by a finished probe ...
        await asyncio.wait_for(seeder.crawler.stop(), 2.0)  # ... and cancelled in the same turn

    asyncio.run(scenario())


def test_a_dial_whose_connection_is_up_counts_once_toward_its_slot(lt, make_node):
    """Seen in the poison test: a node with exactly 8 reachable netgroups sometimes ends with 7
    full-relay peers and 1 block-relay, as next_kind() saw 8 full-relay links while one was both
    a peer and still in `pending`."""
    target = make_node()
    node = make_node(peering={"outbound_full_relay": 2})
    lt.run(node.open_connection(target.config.bind, target.port, "outbound-full-relay"))
    lt.wait(lambda: len(node.outbound_peers("outbound-full-relay")) == 1, what="the link to be up")
    endpoint = (target.config.bind, target.port)

    def kind_while_the_dial_task_has_not_resumed() -> str | None:
        node.connman.pending[endpoint] = "outbound-full-relay"  # the state before its finally: runs
        try:
            return node.connman.next_kind(time.time())
        finally:
            del node.connman.pending[endpoint]

    assert lt.eval(kind_while_the_dial_task_has_not_resumed) == "outbound-full-relay"
