"""addrman throughput: add 100k addresses, select 100k times, plus good/get_addr and memory per entry.

Run: python bench/bench_addrman.py [--n 100000]. Prints one line per operation (ops/s).
One process hosts up to 1000 nodes, so these numbers bound how much addr traffic it can absorb.
"""

from __future__ import annotations

import argparse
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=100_000, help="addresses to add and selects to run")
    args = parser.parse_args()
    n = args.n
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
