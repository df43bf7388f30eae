"""Throughput of tx relay in one host process, and where its CPU goes (issue 17).

N nodes (default 300) on the manual random graph of bench_node.py (8 outbound each, flood relay);
once every node has its 8 links, `--txs` transactions are injected at random nodes, `--rounds`
times, and each round prints the messages the nodes counted (sent + received, as bench_node's (d))
per CPU second of this process. With `--profile OUT`, py-spy (`pip install py-spy`) samples this
process during the rounds only and writes its top functions (by own time and by total time) to OUT.

Run inside a private network namespace (unshare -n), with `nice -n 19` on a shared machine:
    python bench/profile_relay.py [--nodes 300] [--txs 30] [--rounds 3] [--profile prof.txt]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from bench_node import OUTBOUND, PORT, ip, random_outbound
from harness_node.config import NodeConfig
from harness_node.host import Host, new_event_loop
from harness_node.procutil import raise_fd_limit, tune_gc
from scale_workers import wait_for


async def relay_rounds(n: int, txs: int, rounds: int, profile: Path | None) -> list[tuple[int, float]]:
    rng = random.Random(1)
    graph = random_outbound(n, OUTBOUND, rng)
    configs = [NodeConfig(name=f"n{i}", bind=ip(62, i), port=PORT, seed=i,
                          connect=[f"{ip(62, j)}:{PORT}" for j in graph[i]]) for i in range(n)]
    host = Host(configs)
    nodes = list(host.nodes.values())
    await host.start()
    await wait_for(lambda: all(sum(p.verack_received for p in nd.outbound_peers()) == OUTBOUND for nd in nodes),
                   600, "all outbound connected", 0.1)
    await asyncio.sleep(1)
    spy = None
    if profile is not None:
        spy = subprocess.Popen([str(Path(sys.executable).with_name("py-spy")), "record", "--pid", str(os.getpid()),
                                "--format", "raw", "--rate", "200", "--output", str(profile) + ".raw"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        await asyncio.sleep(2)  # py-spy attaches
    results = []
    try:
        for _ in range(rounds):
            msgs0, cpu0 = sum(nd.stats.messages_total for nd in nodes), time.process_time()
            batch = [nodes[rng.randrange(n)].inject_tx() for _ in range(txs)]
            await wait_for(lambda: all(t.txid in nd.mempool for t in batch for nd in nodes), 600, "txs everywhere", 0.05)
            cpu = time.process_time() - cpu0
            msgs = sum(nd.stats.messages_total for nd in nodes) - msgs0
            results.append((msgs, msgs / cpu))
            print(f"round: {msgs:,} msgs, {cpu:.2f} CPU-s, {msgs / cpu:,.0f} msg/CPU-s", flush=True)
    finally:
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait(60)
        await host.stop()
    if profile is not None:
        summarise(Path(str(profile) + ".raw"), profile)
    return results


def summarise(raw: Path, out: Path, top: int = 40) -> None:
    """py-spy's raw stacks ("f (file:line);g (file:line) count") -> own and total time per function."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = [f.rsplit(":", 1)[0] + ")" if ":" in f else f for f in stack.split(";")]
        c = int(count)
        samples += c
        own[frames[-1]] += c
        for f in set(frames):
            total[f] += c
    lines = [f"{samples} samples", "", "own time:"]
    lines += [f"{100 * c / samples:5.1f} %  {f}" for f, c in own.most_common(top)]
    lines += ["", "total time (self + callees):"]
    lines += [f"{100 * c / samples:5.1f} %  {f}" for f, c in total.most_common(top)]
    out.write_text("\n".join(lines) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", type=int, default=300)
    ap.add_argument("--txs", type=int, default=30, help="transactions injected per round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--profile", type=Path, help="sample with py-spy during the rounds; write a summary here")
    args = ap.parse_args()
    raise_fd_limit()
    tune_gc()  # as a host process does (host.run_host)
    loop = new_event_loop()
    try:
        loop.run_until_complete(relay_rounds(args.nodes, args.txs, args.rounds, args.profile))
    finally:
        loop.close()


if __name__ == "__main__":
    main()
