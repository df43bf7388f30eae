"""Benchmarks of the lightweight node (issue "The lightweight node").

(a) RSS of one `harness-node run` process, idle with 8 peers            target <= 40 MB
(b) N nodes (default 1,000) in one host process: memory per node and
    time until every node has its 8 outbound connections                 target <= 30 s
(c) time for an injected tx to reach all N nodes (flood, no delay)       target <= 2 s
(d) P2P messages processed per second per core (host process)
(e) hostile load: RSS and CPU of one node process idle, then under 20 spam peers (bench/hostile_load.py)

Run: python bench/bench_node.py [--nodes 1000] [--skip-rss] [--processes]. Prints a table; takes a
few minutes. More nodes than one process's open-files limit holds (--nodes 10000) run in several
host processes (scale_workers.py): automatic outbound, memory, tx reach, msgs per CPU-s, idle lag.
Only the hostile row: python bench/bench_node.py --hostile-only [--spam-peers 20] [--seconds 20].
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import time
from typing import Any
import urllib.request

from harness_node.config import NodeConfig
from harness_node.host import Host, new_event_loop
from harness_node.peering.peerconfig import MAX_FEELER
from harness_node.peering.descriptors import PROCESS_RESERVE
from harness_node.procutil import tune_gc
from hostile_load import bench_hostile
from scale_workers import spread_ip, wait_for

OUTBOUND = 8
BLOCK_RELAY = 2  # Core's block-relay-only slots, beside the 8 full-relay
PORT = 18444


def rss_mb(pid: int | str = "self") -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def ip(prefix: int, i: int) -> str:
    return f"127.{prefix}.{i // 250}.{i % 250 + 1}"


def automatic_nodes(asked: int, limit: int) -> int:
    """How many nodes with automatic 8 + 2 fit one process under `limit` open files, as the nodes'
    own descriptor budget counts (harness_node/peering/descriptors.py): the process's reserve, each
    node's listener and 11 outbound slots (the feeler's too) set aside, and its 10 outbound links'
    inbound ends, all in this process. 21 a node and 1,000 spare, as counted before the budget,
    let 904 nodes start of which only ~740 could fill their slots."""
    set_aside = 1 + OUTBOUND + BLOCK_RELAY + MAX_FEELER  # what ConnMan.hold_descriptors holds
    per_node = set_aside + OUTBOUND + BLOCK_RELAY  # and the inbound ends of its own links
    return min(asked, (limit - PROCESS_RESERVE) // per_node)


async def bench_single_rss() -> float:
    """One node process; 8 peers from this process dial it (their inbound = its 8 peers)."""
    node_ip = ip(61, 0)
    proc = subprocess.Popen([sys.executable, "-m", "harness_node.cli", "run", "--name", "rss", "--bind", node_ip,
                             "--port", str(PORT), "--control-port", "18445"])
    try:
        status_url = f"http://{node_ip}:18445/status"

        def peers() -> int:
            try:
                with urllib.request.urlopen(status_url, timeout=1) as r:
                    return sum(p["handshake_done"] for p in json.load(r)["peers"])
            except OSError:
                return -1

        await wait_for(lambda: peers() >= 0, 20, "node up", 0.2)
        configs = [NodeConfig(name=f"p{i}", bind=ip(61, i + 1), port=PORT, connect=[f"{node_ip}:{PORT}"])
                   for i in range(OUTBOUND)]
        async with Host(configs):
            await wait_for(lambda: peers() == OUTBOUND, 20, "8 peers", 0.2)
            await asyncio.sleep(2)  # idle: let the process settle after the handshakes
            return rss_mb(proc.pid)
    finally:
        proc.terminate()
        proc.wait(10)


def random_outbound(n: int, k: int, rng: random.Random) -> list[list[int]]:
    linked: set[tuple[int, int]] = set()
    out: list[list[int]] = []
    for i in range(n):
        picks: list[int] = []
        while len(picks) < k:
            j = rng.randrange(n)
            pair = (min(i, j), max(i, j))
            if j != i and pair not in linked:
                linked.add(pair)
                picks.append(j)
        out.append(picks)
    return out


async def bench_host(n: int) -> dict[str, float]:
    rng = random.Random(1)
    graph = random_outbound(n, OUTBOUND, rng)
    configs = [NodeConfig(name=f"n{i}", bind=ip(62 + i // 60000, i), port=PORT, seed=i,
                          connect=[f"{ip(62, j)}:{PORT}" for j in graph[i]]) for i in range(n)]
    rss0 = rss_mb()
    host = Host(configs)
    nodes = list(host.nodes.values())
    t0 = time.monotonic()
    await host.start()
    t_listen = time.monotonic() - t0
    await wait_for(lambda: all(sum(p.verack_received for p in nd.outbound_peers()) == OUTBOUND for nd in nodes),
                   300, "all outbound connected", 0.1)
    connect_s = time.monotonic() - t0  # from the first listener to the last verack
    await asyncio.sleep(1)
    per_node_kb = (rss_mb() - rss0) * 1024 / n
    # (c) flood propagation of a synthetic tx to every node
    reach = []
    for k in range(3):
        tx = nodes[k * 7 % n].inject_tx()
        await wait_for(lambda: all(tx.txid in nd.mempool for nd in nodes), 30, "tx everywhere", 0.02)
        recs = [nd.mempool.record(tx.txid) for nd in nodes]
        reach.append((max(r.first_seen_ns for r in recs) - recs[0].origin_ns) / 1e9)
    # (d) message throughput: a burst of txs, messages received / CPU seconds of this process
    msgs0 = sum(nd.stats.messages_total for nd in nodes)
    cpu0 = time.process_time()
    txs = [nodes[rng.randrange(n)].inject_tx() for _ in range(10)]
    await wait_for(lambda: all(t.txid in nd.mempool for t in txs for nd in nodes), 120, "burst everywhere", 0.05)
    cpu = time.process_time() - cpu0
    msgs = sum(nd.stats.messages_total for nd in nodes) - msgs0
    await host.stop()
    return {"nodes": n, "listen_s": t_listen, "connect_s": connect_s, "per_node_kb": per_node_kb,
            "rss_total_mb": rss_mb(), "reach_s": statistics.median(reach), "reach_all": reach,
            "msgs": msgs, "msgs_per_cpu_s": msgs / cpu}


async def bench_automatic(n: int, known: int = 100, blocks: int = 3) -> dict[str, Any]:
    """(b2) automatic outbound: every node's addrman holds `known` random peers; the connection
    manager fills 8 full-relay + 2 block-relay slots, one per netgroup, as Core does. (b3) then
    `blocks` blocks, one at a time from a random node: how long each takes to reach every node, and
    how many `block` messages a node receives for one (1.0 when each downloads it once, as Core's
    one request per block in flight does)."""
    from harness_node.wire.codec import NetAddr

    rng = random.Random(2)
    configs = [NodeConfig(name=f"a{i}", bind=spread_ip(i), port=PORT, seed=i) for i in range(n)]
    host = Host(configs)
    nodes = list(host.nodes.values())
    now = int(time.time())
    for i, nd in enumerate(nodes):
        picks = rng.sample([j for j in range(n) if j != i], min(known, n - 1))
        nd.connman.addrman.add([NetAddr(spread_ip(j), PORT, 9, now - 3600) for j in picks], source_ip="127.1.1.1")
    t0 = time.monotonic()
    await host.start()

    def full(nd) -> bool:
        peers = [p for p in nd.outbound_peers() if p.verack_received]
        return (sum(p.kind == "outbound-full-relay" for p in peers) == 8
                and sum(p.kind == "block-relay" for p in peers) == 2)

    try:
        await wait_for(lambda: all(full(nd) for nd in nodes), 300, "all automatic slots filled", 0.1)
        connect_s: float | None = time.monotonic() - t0
    except TimeoutError:  # say how far it got rather than lose the other figures
        connect_s = None
    filled = sum(full(nd) for nd in nodes)
    reach, downloads = [], []
    # how the blocks were announced: `headers` where the peer holds the parent, else `inv` (no tx
    # flows in this phase, so every inv sent is a block's)
    sent = lambda kind: sum(nd.stats.msgs[("out", kind)] for nd in nodes)  # noqa: E731
    announced = {kind: -sent(kind) for kind in ("headers", "inv")}
    for _ in range(blocks if connect_s is not None else 0):
        received = lambda: sum(nd.stats.msgs[("in", "block")] for nd in nodes)  # noqa: E731
        before, t = received(), time.monotonic()
        block = rng.choice(nodes).mine_block()
        await wait_for(lambda: all(nd.chain.has(block.hash) for nd in nodes), 120, "the block everywhere", 0.05)
        reach.append(time.monotonic() - t)
        await asyncio.sleep(2)  # copies still on their way count too
        downloads.append((received() - before) / (n - 1))
    for kind in announced:
        announced[kind] += sent(kind)
    await host.stop()
    return {"connect_s": connect_s, "nodes": n, "filled": filled, "block_reach": reach, "block_downloads": downloads,
            "announced": announced}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", type=int, default=1000)
    ap.add_argument("--skip-rss", action="store_true")
    ap.add_argument("--processes", action="store_true",
                    help="several host processes even if one could hold the nodes (automatic when it cannot)")
    ap.add_argument("--connect-timeout", type=float, default=300.0,
                    help="several host processes: how long to wait for every node's 8 + 2 outbound")
    ap.add_argument("--hostile-only", action="store_true", help="run only row (e), the hostile load")
    ap.add_argument("--automatic-only", action="store_true", help="run only rows (b2) and (b3) in this process")
    ap.add_argument("--spam-peers", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=20.0, help="length of the idle and the hostile window")
    args = ap.parse_args()
    if args.hostile_only:
        print_rows(hostile_rows(asyncio.run(bench_hostile(args.spam_peers, args.seconds))))
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if args.automatic_only:
        tune_gc()
        loop = new_event_loop()
        try:
            auto = loop.run_until_complete(bench_automatic(automatic_nodes(args.nodes, hard)))
        finally:
            loop.close()
        print_rows([(f"(b2) automatic ({auto['nodes']} nodes): every node has 8 full-relay + 2 block-relay",
                     f"{auto['connect_s']:.1f} s" if auto["connect_s"] is not None else "not all", "<= 30 s"),
                    *block_rows(auto)], type(loop).__module__)
        return
    need = args.nodes * (2 * OUTBOUND + 1) + 100
    if need > hard or args.processes:
        multi_process(args.nodes, hard, args.connect_timeout)
        return
    tune_gc()  # this process hosts the nodes of (b)-(d), as a host process does (host.run_host)
    loop = new_event_loop()
    loop_name = type(loop).__module__
    try:
        rss = None if args.skip_rss else loop.run_until_complete(bench_single_rss())
        h = loop.run_until_complete(bench_host(args.nodes))
        print(f"(b)-(d) done: {h}", flush=True)  # before (b2), which takes the longest
        auto_nodes = automatic_nodes(args.nodes, hard)
        auto = loop.run_until_complete(bench_automatic(auto_nodes))
    finally:
        loop.close()
    rows = [
        ("(a) RSS, one node process idle with 8 peers", "-" if rss is None else f"{rss:.1f} MB", "<= 40 MB"),
        (f"(b) memory per node ({h['nodes']} in one process)", f"{h['per_node_kb']:.0f} kB", ""),
        ("(b) host process RSS", f"{h['rss_total_mb']:.0f} MB", ""),
        (f"(b) time until every node has {OUTBOUND} outbound", f"{h['connect_s']:.1f} s", "<= 30 s"),
        (f"(b2) automatic ({auto['nodes']} nodes): every node has 8 full-relay + 2 block-relay",
         f"{auto['connect_s']:.1f} s" if auto["connect_s"] is not None
         else f"{auto['filled']} of {auto['nodes']} in 300 s", "<= 30 s"),
        *block_rows(auto),
        (f"(c) injected tx reaches all {h['nodes']} (flood), median of 3",
         f"{h['reach_s']:.2f} s  ({', '.join(f'{r:.2f}' for r in h['reach_all'])})", "<= 2 s"),
        ("(d) messages processed per CPU second", f"{h['msgs_per_cpu_s']:,.0f} msg/s  ({h['msgs']:,} msgs)", ""),
    ]
    rows += hostile_rows(asyncio.run(bench_hostile(args.spam_peers, args.seconds)))
    print_rows(rows, loop_name)


def block_rows(auto: dict) -> list[tuple[str, str, str]]:
    if not auto["block_reach"]:
        return []
    return [(f"(b3) a block reaches all {auto['nodes']} (automatic 8 + 2), each of {len(auto['block_reach'])}",
             ", ".join(f"{x:.2f} s" for x in auto["block_reach"]), ""),
            ("(b3) block messages a node receives for one block",
             ", ".join(f"{x:.2f}" for x in auto["block_downloads"]), "1.0 (Core)"),
            ("(b3) announcements sent as headers / inv (headers only where they connect)",
             f"{auto['announced']['headers']:,} / {auto['announced']['inv']:,}", "")]


def hostile_rows(r: dict) -> list[tuple[str, str, str]]:
    idle, hostile = r["idle"], r["hostile"]
    return [
        ("(e) victim idle: RSS / CPU", f"{idle['rss_mb']:.0f} MB / {idle['cpu_pct']:.1f} %", ""),
        (f"(e) victim under {r['peers']} spam peers, {r['seconds']:.0f} s: peak RSS / CPU",
         f"{hostile['peak_mb']:.0f} MB / {hostile['cpu_pct']:.0f} %", ""),
        ("(e) spam sessions / refused connections / spam messages",
         f"{r['sessions']} / {r['refused']} / {r['messages']}", "victim alive" if r["alive"] else "VICTIM DIED"),
    ]


def print_rows(rows: list[tuple[str, str, str]], loop: str = "asyncio") -> None:
    """The table, and what it ran on (`loop`: the host processes' event loop's module)."""
    width = max(len(r[0]) for r in rows)
    print(f"{'benchmark'.ljust(width)}  {'result':<32}  target")
    for name, value, target in rows:
        print(f"{name.ljust(width)}  {value:<32}  {target}")
    print(f"(python {sys.version.split()[0]} {interpreter_build()}, loop {loop}, pid {os.getpid()}, "
          f"{os.cpu_count()} cores; reference loop {reference_loop() * 1000:.0f} ms)")


def reference_loop(rounds: int = 3) -> float:
    """CPU seconds of a fixed pure-Python loop (dict lookups, method calls, appends: what handling a
    message is made of), the best of `rounds`, timed when the table is printed. The same code here
    took 89 CPU-s to form 10,000 nodes in one run and 122 half an hour later, with no steal time: the
    host's speed drifts, and this says how fast it was around the run."""
    table: dict[int, list[int]] = {}

    def step(k: int) -> None:
        xs = table.get(k)
        if xs is None:
            xs = table[k] = []
        xs.append(k)
        if len(xs) > 8:
            xs.clear()

    best = float("inf")
    for _ in range(rounds):
        t = time.process_time()
        for i in range(1_000_000):
            step(i & 1023)
        best = min(best, time.process_time() - t)
    return best


def interpreter_build() -> str:
    """Which interpreter ran, and how it was linked: pyenv's default build (a shared libpython,
    no PGO) ran a pure-Python loop ~10 % slower here than Debian's python3 (libpython in the
    executable, PGO and LTO), so a figure says which it came from (docs/benchmarks.md)."""
    try:
        with open("/proc/self/maps") as f:
            shared = "libpython" in f.read()
    except OSError:
        return "(build unknown)"
    return f"({sys.executable}, libpython {'shared' if shared else 'in the executable'})"


def multi_process(n: int, hard: int, connect_timeout: float = 300.0) -> None:
    """More nodes than one process's descriptor limit holds: K host processes (scale_workers.py),
    automatic outbound (8 full-relay + 2 block-relay), flood relay."""
    import scale_workers

    workers = scale_workers.workers_needed(n, hard)
    loop = new_event_loop()  # the workers' loop too: they start theirs with the same new_event_loop
    loop_name = type(loop).__module__
    try:
        r = loop.run_until_complete(scale_workers.run(n, workers, progress=lambda m: print(m, flush=True),
                                                       connect_timeout=connect_timeout))
    finally:
        loop.close()
    connect = "not all" if r["connect_s"] is None else f"{r['connect_s']:.1f} s"
    rows = [
        (f"(b) memory per node ({n} in {workers} host processes)", f"{r['per_node_kb']:.0f} kB", "<= 200 kB"),
        ("(b) RSS of all host processes", f"{r['rss_total_mb']:.0f} MB", ""),
        ("(b2) every node has 8 full-relay + 2 block-relay (automatic)",
         f"{connect} ({r['full_nodes']} of {n} nodes{'' if r['connect_s'] else f' in {connect_timeout:.0f} s'}; "
         f"{r['connect_cpu_s']:.1f} CPU-s, kernel {r['connect_sys_s']:.1f}, collector {r['connect_gc_s']:.1f}; "
         f"stolen {r['connect_steal_s']:.1f}; {r['dials_per_node']:.2f} dials a node, {r['dial_failures']} failed)",
         "<= 60 s"),
        ("idle event-loop lag p99 (worst host process)", f"{r['idle_lag_p99_s'] * 1000:.1f} ms", "<= 50 ms"),
        ("idle CPU of the formed network (all processes)", f"{r['idle_cores']:.2f} cores", ""),
        (f"(c) injected tx reaches all {n} (flood), median of 3",
         "-" if r["reach_s"] is None else f"{r['reach_s']:.2f} s  ({', '.join(f'{x:.2f}' for x in r['reach_all'])})",
         "<= 5 s"),
        ("(d) messages processed per CPU second (all processes)",
         f"{r['msgs_per_cpu_s']:,.0f} msg/s  ({r['msgs']:,} msgs, {r['burst_cpu_s']:.1f} CPU-s in {r['burst_wall_s']:.1f} s"
         f"; kernel {r['burst_sys_s']:.1f} CPU-s; stolen {r['burst_steal_s']:.1f} CPU-s; collector {r['burst_gc_s']:.1f} CPU-s, {r['burst_gc_full']} full collections"
         f"{', burst not everywhere' if r.get('burst_partial') else ''})",
         ">= 100,000"),
    ]
    print_rows(rows, loop_name)


if __name__ == "__main__":
    main()
