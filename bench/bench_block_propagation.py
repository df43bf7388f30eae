"""Block propagation against block size under scenarios/block-propagation.yaml's network (regions,
20 % slow nodes): the curve's shape (flat below the bandwidth knee, growing above it) and the
loop-lag verdict of each run.

    python bench/bench_block_propagation.py                      # 50 kB, 540 kB, 2 MB
    python bench/bench_block_propagation.py --sizes 540000 --blocks 6

Runs `harness run` on a copy of the scenario with the blocks resized (inside a private network
namespace if you share the machine: unshare -n). One line of JSON per size: size, blocks, the
median time to 10 / 50 / 90 % of honest nodes, the worst p50/p99 event-loop lag and whether the
report marked the block figures.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = ROOT / "scenarios" / "block-propagation.yaml"
INTERVAL = 30  # seconds between blocks, as in the scenario


def scenario_for(size: int, blocks: int, interval: int = INTERVAL) -> dict:
    s = yaml.safe_load(SCENARIO.read_text())
    s["name"] = f"block-propagation-{size}"
    s["duration"] = f"{30 + interval * blocks}s"
    s["faults"] = [{"at": f"{30 + interval * k}s", "action": "inject_block", "target": {"role": "honest", "mode": "one"},
                    "params": {"size": size}} for k in range(blocks)]
    s["expect"] = [{"check": "no_honest_banned"}]
    return s


def run(size: int, blocks: int, interval: int, work: Path) -> dict:
    path = work / f"bp-{size}.yaml"
    path.write_text(yaml.safe_dump(scenario_for(size, blocks, interval)))
    run_dir = work / f"run-{size}"
    harness = Path(sys.executable).parent / "harness"  # the console script next to this interpreter
    subprocess.run([str(harness), "run", str(path), "--run-dir", str(run_dir)],
                   check=False, capture_output=True)
    timing = json.loads((run_dir / "report" / "report.json").read_text())["timing"]
    return {"size": size, "blocks": blocks, "interval_s": interval, "t10_s": timing["block_curve"]["10"], "t50_s": timing["block_curve"]["50"],
            "t90_s": timing["block_curve"]["90"], "lag_p50_s": timing["worst_p50"], "lag_p99_s": timing["worst_p99"],
            "marked": "block" in timing["marked_kinds"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[50_000, 540_000, 2_000_000])
    ap.add_argument("--blocks", type=int, default=4)
    ap.add_argument("--interval", type=int, default=INTERVAL,
                    help="seconds between blocks: a block still travelling when the next one is mined forks")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            print(json.dumps(run(size, args.blocks, args.interval, Path(tmp))), flush=True)


if __name__ == "__main__":
    main()
