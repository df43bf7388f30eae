"""The controller's attacker polling, per identity vs per process: deploy a scenario with many
attacker identities (default scenarios/eclipse-heilman.yaml: 480 eclipse identities in one attacker
process) and time the two ways the collector can learn every identity's /status on one poll:

- before (until issue 11's fix): GET /status on every identity's control site, one request each;
- after: Collector._attacker_statuses, one GET /identities per attacker process.

    python bench/bench_collector.py                                  # eclipse-heilman, 5 rounds each
    python bench/bench_collector.py --scenario scenarios/spy.yaml --rounds 10

Run it in a private network namespace like the tests (unshare -n; loopback up). Prints one JSON
document: identities, attacker processes, per way the requests per poll and the median / max wall
seconds of a poll's attacker part, and the load average before and after (the figures measure this
machine as much as the code: docs/benchmarks.md records them next to `uptime`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from harness.backends.client import ControlAPIError, ControlClient
from harness.controller.collector import Collector
from harness.plan.model import Plan
from harness.run import runner
from harness.run.rundir import RunDir
from harness.backends.registry import make_backend

ROOT = Path(__file__).resolve().parents[1]


class CountingClient(ControlClient):
    """The real client, counting the requests it sends."""

    requests = 0

    async def request(self, *args: Any, **kwargs: Any) -> Any:
        self.requests += 1
        return await super().request(*args, **kwargs)


async def measure(run: RunDir, rounds: int) -> dict[str, Any]:
    be = make_backend("local", run)
    plan = Plan.from_json(run.plan_file.read_text())
    names = plan.names("attacker")
    endpoints = be.node_endpoints()
    async with CountingClient(run.load_state().control_token) as client:
        collector = Collector(plan, client, endpoints, time.time())
        ways = {"per_identity": lambda: client.gather([endpoints[n] for n in names], client.status),
                "per_process": lambda: collector._attacker_statuses(names)}
        seconds: dict[str, list[float]] = {w: [] for w in ways}
        requests: dict[str, int] = {}
        answered: dict[str, int] = {}
        for _ in range(rounds):  # interleaved, so both ways see the same load
            for way, poll in ways.items():
                client.requests, start = 0, time.monotonic()
                got = await poll()
                seconds[way].append(time.monotonic() - start)
                requests[way] = client.requests
                answered[way] = sum(1 for r in got.values() if not isinstance(r, ControlAPIError))
        return {"identities": len(names), **{w: {
            "requests_per_poll": requests[w], "answered": answered[w], "polls": rounds,
            "median_s": round(statistics.median(seconds[w]), 3), "max_s": round(max(seconds[w]), 3)} for w in ways}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scenario", default=str(ROOT / "scenarios" / "eclipse-heilman.yaml"))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--settle", type=float, default=25.0, help="seconds after deploy before measuring")
    args = parser.parse_args()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        run = RunDir(Path(tmp) / "run")
        runner.deploy(args.scenario, run_dir=run.path, wait=True)
        try:
            time.sleep(args.settle)  # the identities have started their attack (eclipse-heilman: 18 s)
            result = asyncio.run(measure(run, args.rounds))
        finally:
            runner.down(run.path)
    print(json.dumps({"scenario": Path(args.scenario).name, **result,
                      "load_before": [round(x, 1) for x in load_before],
                      "load_after": [round(x, 1) for x in os.getloadavg()]}, indent=1))


if __name__ == "__main__":
    main()
