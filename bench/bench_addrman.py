"""addrman throughput: add 100k addresses, select 100k times, plus good/get_addr and memory per entry,
and placing addresses as a forming network does.

Run: python bench/bench_addrman.py [--n 100000] [--tables 833]. Prints one line per operation (ops/s).
One process hosts up to 1000 nodes, so these numbers bound how much addr traffic it can absorb.
"Forming" is one host process of a 10,000-node network (`--tables` nodes) while it forms: each
node's table starts with 100 addresses, then takes the 8 getaddr answers of ~25 addresses each
from 8 peers, all nodes' answers interleaved (as they arrive), the collector tuned as a host
process tunes it. Its CPU per address is what addrman costs a forming network (24 % of it at
10,000 nodes, docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import gc
import random
import time
import tracemalloc

from harness_node.addr.addrman import AddrMan
from harness_node.wire.codec import NetAddr
from harness_node.addr.netgroup import NetGroups

NOW = 1_700_000_000.0


def addresses(n: int) -> list[NetAddr]:
    rng = random.Random(0)
    out = []
    for _ in range(n):
        ip = f"127.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
        out.append(NetAddr(ip=ip, port=8333, services=1, time=int(NOW - rng.uniform(0, 7 * 86400))))
    return out


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


def fresh(clock: Clock | None = None) -> AddrMan:
    # common_port: a node passes its own listening port (most of a testnet's addresses use it)
    return AddrMan(bytes(range(32)), NetGroups(), random.Random(1), clock or Clock(), common_port=8333)


def timed(label: str, n: int, fn) -> None:
    t0 = time.perf_counter()
    fn()
    dt = time.perf_counter() - t0
    print(f"{label:<34} {n:>8} ops  {dt:7.3f} s  {n / dt:>10,.0f} ops/s")


def forming(tables: int, nodes: int = 10_000) -> None:
    """addrman's share of a forming host process (see the module docstring): CPU per address."""
    from harness_node.procutil import tune_gc

    thresholds = gc.get_threshold()
    tune_gc()
    rng = random.Random(1)

    def ip(i: int) -> str:  # bench_node.py's node addresses: 200 /16 netgroups
        return f"127.{20 + i % 200}.{i // 200}.1"

    def some(k: int) -> list[NetAddr]:
        return [NetAddr(ip(j), 18444, 9, int(NOW - 3600)) for j in rng.sample(range(nodes), k)]

    clock = Clock()
    ams = [AddrMan(rng.randbytes(32), NetGroups(), random.Random(k), clock, common_port=18444) for k in range(tables)]
    for am in ams:
        am.add(some(100), source_ip="127.1.1.1")
    answers = [(am, ip(rng.randrange(nodes)), some(25)) for _ in range(8) for am in ams]
    rng.shuffle(answers)
    c0 = time.process_time()
    for am, source, addrs in answers:
        am.add(addrs, source_ip=source, time_penalty=7200)
    cpu = time.process_time() - c0
    gc.set_threshold(*thresholds)  # the rows after this one measure as they always have
    placed = 25 * len(answers)
    print(f"{'add while forming (' + str(tables) + ' nodes)':<34} {placed:>8} ops  {cpu:7.3f} s  "
          f"{placed / cpu:>10,.0f} ops/s  ({cpu / placed * 1e6:.1f} us CPU an address)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=100_000, help="addresses to add and selects to run")
    parser.add_argument("--tables", type=int, default=833, help="nodes of one forming host process")
    args = parser.parse_args()
    n = args.n
    forming(args.tables)
    addrs = addresses(n)
    clock = Clock()
    am = fresh(clock)

    def add_all() -> None:
        for i in range(0, n, 10):  # addr messages of 10 from rotating sources
            am.add(addrs[i : i + 10], source_ip=f"127.{i // 10 % 256}.0.1", time_penalty=7200)

    timed("add (in batches of 10)", n, add_all)
    print(f"  stored: {am.size()} (new, tried) = {am.counts()}")
    goods = addrs[: n // 10]
    timed("good (10 % of them)", len(goods), lambda: [am.good(a.ip, a.port) for a in goods])
    print(f"  (new, tried) = {am.counts()}")
    clock.now += 3600  # past GetChance's 10-minute "recently tried" penalty, as in steady state
    timed("select", n, lambda: [am.select() for _ in range(n)])
    timed("select(new_only=True)", n // 10, lambda: [am.select(new_only=True) for _ in range(n // 10)])
    timed("get_addr (23 %, max 1000)", 100, lambda: [am.get_addr() for _ in range(100)])

    small = addresses(20_000)
    # What the process shares between all its nodes is warmed first (interned ip strings, the codec's
    # and netgroups' per-ip memos): the figure is what one more node's table costs.
    warm = fresh()
    for i in range(0, len(small), 10):
        warm.add(small[i : i + 10], source_ip=f"127.{i // 10 % 256}.0.1")
    del warm
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    m = fresh()
    for i in range(0, len(small), 10):
        m.add(small[i : i + 10], source_ip=f"127.{i // 10 % 256}.0.1")
    used = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    print(f"memory: {used / m.size():.0f} B per entry ({m.size()} entries, {used / 2**20:.1f} MiB)")


if __name__ == "__main__":
    main()
