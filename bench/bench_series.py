"""Label sets stay bounded: deploy a large network with `--monitor`, let it work, then count the
series of every harness metric on one scrape of every member, and in the run's Prometheus.

    python bench/bench_series.py                       # 300 nodes, time_scale 1, 90 s of traffic
    python bench/bench_series.py --nodes 100 --wait 60

Prints one JSON document: nodes, targets, per metric the series summed over all targets and the
largest count on one target, the totals, and what Prometheus holds. A metric whose series grow
with traffic (per peer, per address, per transaction) would show up as a per-target maximum far
above the catalogue's label sets; `node`-labelled metrics are expected to grow with the node count
only (one target per node), `victim` ones with the victims.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import urllib.parse
import urllib.request
from collections import defaultdict
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from harness.run import runner

SCENARIO = """\
name: series-{nodes}
seed: 1
duration: 600s
network:
  nodes: {nodes}
  time_scale: {time_scale}
seeder:
  mode: honest
workload:
  tx_rate: 0.5
  start: 10s
  block_interval: 30s
faults:
  - at: 40s
    action: restart_node
    target: node-3
expect:
  - check: not_eclipsed          # every honest node a victim: the largest `victim` label set
    victim: {{role: honest}}
    max_attacker_share: 0.5
"""


SCRAPE_TRIES = 3  # a worker hosting hundreds of nodes on a loaded machine may miss one 60 s answer


def scrape(target: str) -> dict[str, int]:
    for attempt in range(SCRAPE_TRIES):
        try:
            with urllib.request.urlopen(f"http://{target}/metrics", timeout=60) as r:
                text = r.read().decode()
            break
        except (TimeoutError, OSError):
            if attempt == SCRAPE_TRIES - 1:
                raise
    counts: dict[str, int] = defaultdict(int)
    for family in text_string_to_metric_families(text):
        if family.name.startswith("harness_"):
            counts[family.name] += len(family.samples)
    return counts


def prometheus_series(url: str) -> dict[str, int]:
    query = urllib.parse.urlencode({"query": 'count by (__name__) ({__name__=~"harness_.+"})'})
    with urllib.request.urlopen(f"{url}/api/v1/query?{query}", timeout=30) as r:
        result = json.load(r)["data"]["result"]
    return {s["metric"]["__name__"]: int(float(s["value"][1])) for s in result}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--nodes", type=int, default=300)
    parser.add_argument("--time-scale", type=float, default=1.0)
    parser.add_argument("--wait", type=float, default=90.0, help="seconds of traffic before the scrape")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        scenario = Path(tmp) / "series.yaml"
        scenario.write_text(SCENARIO.format(nodes=args.nodes, time_scale=args.time_scale))
        run_dir = Path(tmp) / "run"
        state = runner.deploy(scenario, run_dir=run_dir, wait=True, monitor={})
        try:
            time.sleep(args.wait)  # the traffic whose label values we want to see
            plan = json.loads((run_dir / "plan.json").read_text())
            targets = [f"{n['address']}:{n['control_port']}" for n in plan["nodes"] if n["role"] in ("honest", "seeder")]
            targets.append(state.controller_url.removeprefix("http://"))
            total: dict[str, int] = defaultdict(int)
            largest: dict[str, int] = defaultdict(int)
            for target in targets:
                for name, n in scrape(target).items():
                    total[name] += n
                    largest[name] = max(largest[name], n)
            time.sleep(12)  # two scrape intervals of the run's Prometheus after ours
            stored: dict[str, int] = defaultdict(int)
            for name, n in prometheus_series(state.monitor_url).items():  # by family, as the scrape counts
                base = next((name[: -len(x)] for x in ("_bucket", "_sum", "_count", "_total")
                             if name.endswith(x) and name[: -len(x)] in total), name)
                stored[base] += n
        finally:
            runner.down(run_dir)
    print(json.dumps({
        "nodes": args.nodes, "time_scale": args.time_scale, "targets": len(targets),
        "series_per_scrape": sum(total.values()), "series_per_node_target": round(sum(total.values()) / len(targets), 1),
        "prometheus_series": sum(stored.values()),
        "metrics": {name: {"all_targets": total[name], "largest_target": largest[name], "prometheus": stored.get(name)}
                    for name in sorted(total, key=lambda n: -total[n])},
    }, indent=1))


if __name__ == "__main__":
    main()
