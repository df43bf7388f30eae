"""The spy while it runs (issue 11), on a deployed local network (real node, attacker and controller
processes on loopback): the controller re-scores the spy during the run, so its precision and recall
gauges exist, and move, before the run ends; and the collector asks an attacker process for all its
identities' status in one request (GET /identities), not one request per identity."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from harness.backends.registry import make_backend
from harness.controller.collector import Collector
from tests.harness.counting_client import CountingClient
from harness.plan.model import Plan
from harness.run import runner
from harness.run.rundir import RunDir
from tests.harness.test_teardown import assert_nothing_left, wait_until

pytestmark = pytest.mark.timeout(300)

SPY_IDENTITIES = 6
# Flooding: the first-spy estimator names the sender of almost every tx, so the live recall is far
# from 0 once scored. Long enough that the live figures (first re-score ~10 s after the first
# transactions are 10 s old: service.SPY_SCORE_INTERVAL_SECONDS, SPY_SETTLE_SECONDS) come well before
# the end even on a loaded machine.
SCENARIO = f"""\
name: spy-live
seed: 5
duration: 150s
network: {{nodes: 12, time_scale: 0.05, relay_policy: flood}}
attackers:
  - kind: spy
    count: {SPY_IDENTITIES}
    netgroups: {SPY_IDENTITIES}
    targets: {{role: honest}}
    params: {{connections: 1}}
workload: {{tx_rate: 2.0, start: 5s, stop: 140s}}
"""
RECALL = 'harness_controller_spy_recall_ratio{estimator="first-spy",relay_policy="flood"}'


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunDir, str]]:
    """Deployed with its detached controller running the timeline (harness deploy)."""
    tmp = tmp_path_factory.mktemp("spy-live")
    path = tmp / "spy-live.yaml"
    path.write_text(SCENARIO)
    run = RunDir(tmp / "run")
    try:
        state = runner.deploy(path, run_dir=run.path, wait=True)
        assert state.controller_url
        yield run, state.controller_url
    finally:
        runner.down(run.path)
    assert_nothing_left(run)


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.read().decode()


def _sample(metrics: str, name: str) -> float | None:
    for line in metrics.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return None


def test_spy_precision_and_recall_are_exported_while_the_attack_runs(deployed: tuple[RunDir, str]) -> None:
    _, url = deployed
    # (phase, transactions scored in /results, recall gauge) at each read
    seen: list[tuple[str, int | None, float | None]] = []

    def scored_live() -> bool:
        results = json.loads(_get(f"{url}/results"))
        privacy = (results.get("observations") or {}).get("privacy") or []
        scored = next((p["transactions"] for p in privacy if p["estimator"] == "first-spy"), None)
        seen.append((results["phase"], scored, _sample(_get(f"{url}/metrics"), RECALL)))
        live = [(n, r) for phase, n, r in seen if phase == "timeline" and n is not None and r is not None]
        return len({n for n, _ in live}) >= 2  # re-scored over more transactions: the figures move

    wait_until(scored_live, timeout=140, what="two live spy scores over different transaction counts")
    live = [(n, r) for phase, n, r in seen if phase == "timeline" and n is not None and r is not None]
    assert all(n > 0 and 0.5 < r <= 1.0 for n, r in live), seen  # flooding: the first announcer is the sender
    metrics = _get(f"{url}/metrics")
    precision = _sample(metrics, RECALL.replace("recall", "precision"))
    assert precision is not None and precision > 0.5, metrics
    assert _sample(metrics, "harness_controller_spy_share_ratio") == pytest.approx(SPY_IDENTITIES / (12 + SPY_IDENTITIES))


def test_the_collector_asks_each_attacker_process_once_per_poll(deployed: tuple[RunDir, str]) -> None:
    run, _ = deployed
    be = make_backend("local", run)
    view = Plan.from_json(run.plan_file.read_text())
    spies = view.names("attacker")
    assert len(spies) == SPY_IDENTITIES

    async def two_polls() -> tuple[Counter[str], Counter[str], dict[str, Any]]:
        async with CountingClient(run.load_state().control_token) as client:
            collector = Collector(view, client, be.node_endpoints(), time.time())
            await collector.poll()
            first = Counter(client.paths)
            client.paths.clear()
            await collector.poll()
            return first, Counter(client.paths), dict(collector._status)

    first, second, statuses = asyncio.run(two_polls())
    # one attacker process serves the six identities: one GET /identities, no per-identity /status
    assert first["/identities"] == 1 and second["/identities"] == 1, (first, second)
    # the 12 honest nodes through their worker processes (GET /host/status), none on its own but a
    # member that serves no host route (the seeder)
    assert first["/status"] <= 1 and second["/status"] <= 1, (first, second)
    assert 1 <= first["/host/status"] <= 8 and 1 <= second["/host/status"] <= 8, (first, second)
    for name in spies:  # every identity's status arrived, from its own runtime's answer
        assert statuses[name]["name"] == name and statuses[name]["kind"] == "spy"
