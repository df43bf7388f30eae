"""Local backend: time from deploy to every node answering, memory of the workers, teardown time.

    python bench/bench_deploy.py                 # 50, 200 and 1,000 nodes
    python bench/bench_deploy.py --nodes 50 200  # a subset

One line of JSON per size: nodes, workers (+ seeder), deploy_to_ready_s (every node answers its
control API), deploy_to_95pct_with_8_outbound_s (95 % of honest nodes have bootstrapped from the
DNS seeder and hold >= 8 outbound peers), deploy_to_all_with_10_outbound_s (from 5,000 nodes on the
run waits for every node to hold 8 full-relay + 2 block-relay, issue 17, and the nodes follow Core's
rule of no self-announcement in initial block download), slots_filled_s (from the nodes' own
record of when every one of their 8 + 2 slots first held a ready peer, `peering.slots_filled_at`:
how many did, and the 50th, 95th, 99th percentile and the last of them, seconds after the deploy
started; exact, where the samples above are only as fine as one poll of every node, which takes
4-40 s at 10,000), rss_mib (sum over every process), rss_per_node_kib, down_s, clean.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

from harness.plan.planner import plan_file
from harness.backends.client import ControlAPIError, ControlClient
from harness.backends.endpoint import Endpoint
from harness.backends.local import processes as lw
from harness.backends.registry import make_backend
from harness.run.rundir import RunDir

SCENARIO = """\
name: bench-{nodes}
seed: 1
duration: 60s
network:
  nodes: {nodes}
  time_scale: {time_scale}
  self_advertise_in_ibd: {advertise}
"""
# From this size on, Core's rule for self-announcement in initial block download, as
# scenarios/mainnet-scale.yaml has it: the nodes see no block, and with the testbed's default every
# one of them announces itself at once (docs/benchmarks.md, issue 17, fifth round)
CORE_IBD_FROM = 5000
CONNECTED_OUTBOUND = 8  # full-relay slots (block-relay ones come on top)
CONNECTED_SHARE = 0.95
ALL_SLOTS = 10  # Core's 8 full-relay + 2 block-relay: issue 17 asks for every node at mainnet scale


def rss_kib(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except FileNotFoundError:
            pass
    return total


def bench(nodes: int, root: Path, time_scale: float, deadline_s: float = 300) -> dict[str, object]:
    scenario = root / f"bench-{nodes}.yaml"
    advertise = "false" if nodes >= CORE_IBD_FROM else "true"
    scenario.write_text(SCENARIO.format(nodes=nodes, time_scale=time_scale, advertise=advertise))
    plan = plan_file(scenario)
    run = RunDir(root / f"run-{nodes}")
    backend = make_backend("local", run)
    started, started_wall = time.monotonic(), time.time()
    state = backend.up(plan)
    try:
        backend.wait_ready()
        ready = time.monotonic() - started
        honest = [ep for n, ep in backend.node_endpoints().items() if plan.node(n).role == "honest"]
        filled: dict[str, float] = {}
        connected, all_slots, most_slots = asyncio.run(watch(honest, state.control_token, started, started + deadline_s,
                                                             backend.host_groups(), filled))
        groups = lw.live_groups({p.pgid for p in lw.records(state)})
        rss = rss_kib([pid for pids in groups.values() for pid in pids])
    finally:
        summary = backend.down()
    return {"nodes": nodes, "workers": len(lw.records(state)), "deploy_to_ready_s": round(ready, 2),
            "deploy_to_95pct_with_8_outbound_s": round(connected, 1) if connected else None,
            "deploy_to_all_with_10_outbound_s": round(all_slots, 1) if all_slots else None,
            "most_nodes_with_10_outbound": most_slots,
            "slots_filled_s": spread([at - started_wall for at in filled.values()]),
            "rss_mib": round(rss / 1024, 1), "rss_per_node_kib": round(rss / nodes), "down_s": round(summary.seconds, 2),
            "clean": summary.clean}


def spread(seconds: list[float]) -> dict[str, float | int]:
    """How many, and the 50th, 95th and 99th percentile and the largest, rounded to 0.1 s."""
    if not seconds:
        return {"nodes": 0}
    ordered = sorted(seconds)
    at = lambda q: round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)  # noqa: E731
    return {"nodes": len(ordered), "p50": at(0.5), "p95": at(0.95), "p99": at(0.99), "max": round(ordered[-1], 1)}


async def watch(honest: list[Endpoint], token: str | None, started: float, deadline: float,
                hosts: list[list[str]], filled: dict[str, float]) -> tuple[float | None, float | None, int]:
    """Sample every honest node's outbound count until bootstrap (DNS seeder, gossip) is done:
    (95 % with >= 8, every node with 10, most nodes with 10 seen); `filled` gets each node's
    `slots_filled_at` as it appears. One client for every sample, as
    the run's collector keeps one: after the first it asks each host process once, in one round
    (`harness status` starts afresh and needs several while the graph forms)."""
    connected = all_slots = None
    most_slots = 0
    async with ControlClient(token, timeout=3.0, retries=0) as client:
        client.place(hosts)  # the first sample asks each host once too (it took up to 43 s to find them)
        while time.monotonic() < deadline:
            by_name = await client.statuses(honest)
            filled.update((name, at) for name, s in by_name.items() if not isinstance(s, ControlAPIError)
                          and (at := (s.get("peering") or {}).get("slots_filled_at")) is not None)
            answers = list(by_name.values())
            outbound = [0 if isinstance(s, ControlAPIError) else (s.get("peer_counts") or {}).get("outbound") or 0
                        for s in answers]
            full = sum(1 for o in outbound if o >= CONNECTED_OUTBOUND)
            slots = sum(1 for o in outbound if o >= ALL_SLOTS)
            most_slots = max(most_slots, slots)
            some = sum(1 for o in outbound if o >= 1)
            silent = sum(1 for s in answers if isinstance(s, ControlAPIError))  # a busy host is not a node without peers
            print(f"  {time.monotonic() - started:6.1f} s: {some} with an outbound peer, {full} with >= 8, {slots} with 10"
                  f"{f', {silent} not answering' if silent else ''}", file=sys.stderr, flush=True)
            # not all: in a small testnet a few nodes become hubs, inbound-connected to most others,
            # and Core never dials an address it already has a link with
            if full >= CONNECTED_SHARE * len(honest) and connected is None:
                connected = time.monotonic() - started
            if slots == len(honest):
                all_slots = time.monotonic() - started
            if connected is not None and (all_slots is not None or len(honest) < CORE_IBD_FROM):
                break
            await asyncio.sleep(3.0)  # each sample asks every node: keep the probe light
    return connected, all_slots, most_slots


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, nargs="+", default=[50, 200, 1000])
    parser.add_argument("--time-scale", type=float, default=1.0,
                        help="Core's timers x this (the quickstart uses 0.05: 20x the protocol work per second)")
    parser.add_argument("--deadline", type=float, default=300, help="seconds from deploy to give up waiting")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-deploy-") as tmp:
        for n in args.nodes:
            print(json.dumps({**bench(n, Path(tmp), args.time_scale, args.deadline), "time_scale": args.time_scale}), flush=True)


if __name__ == "__main__":
    main()
