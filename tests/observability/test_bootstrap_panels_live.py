"""The bootstrap dashboard's attack panels ("Victims healed and heal time", "Censored transactions
and delayed blocks") against a real Prometheus scraping a real run of scenarios/bootstrap-poison.yaml
(`harness deploy` on the local backend): their queries return the attack's own numbers, not just
empty-but-present series (test_dashboards_live.py proves every panel's series exist on quickstart)."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from grafana import verify
from tests.observability.prometheus_server import PrometheusServer, prometheus  # noqa: F401 (fixture)
from tests.observability.test_dashboards_live import ROOT, _controller_done, _deploy, _harness
from tests.observability.waiting import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

SCENARIO = ROOT / "scenarios" / "bootstrap-poison.yaml"
PANELS = ("Victims healed and heal time", "Censored transactions and delayed blocks")
VICTIMS = 4  # the scenario's newcomers
HELD = 570.0 * yaml.safe_load(SCENARIO.read_text())["network"]["time_scale"]  # the attackers' hold, wall seconds


@pytest.fixture(scope="module")
def run(prometheus: PrometheusServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:  # noqa: F811
    run_dir = tmp_path_factory.mktemp("bootstrap-panels") / "run"
    _deploy(run_dir, SCENARIO)
    try:
        plan = json.loads((run_dir / "plan.json").read_text())
        state = json.loads((run_dir / "state.json").read_text())
        started = time.time()
        prometheus.set_targets("harness-controller", [state["controller_url"].removeprefix("http://")])
        prometheus.set_targets("harness-attacker", [f"{n['address']}:{n['control_port']}" for n in plan["nodes"]
                                                    if n["role"] == "attacker"])
        wait_until(lambda: _controller_done(state["controller_url"]), plan["duration"] + 180, "the controller to finish")
        time.sleep(3)  # a few scrapes after `done`
        yield {"started": started, "ended": time.time()}
    finally:
        down = _harness("down", "--run-dir", str(run_dir))
        assert down.returncode == 0, down.stdout + down.stderr


def _range(url: str, expr: str, start: float, end: float) -> list[float]:
    """Every non-NaN point of the expression over the run."""
    result = verify._get(url, "/api/v1/query_range", {"query": verify.substitute(expr), "start": f"{start:.3f}",
                                                       "end": f"{end:.3f}", "step": "2"}, 10.0)
    return [float(v) for s in result for _, v in s["values"] if not math.isnan(float(v))]


def _panel(title: str) -> list[verify.PanelQuery]:
    found = [q for q in verify.queries() if q.dashboard == "harness-bootstrap" and q.panel == title]
    assert found, f"no panel {title!r} on the bootstrap dashboard"
    return found


def test_the_heal_panel_shows_every_victim_healed_and_its_heal_time(run: dict[str, Any], prometheus: PrometheusServer) -> None:  # noqa: F811
    healed, p50, p90 = _panel(PANELS[0])
    assert max(_range(prometheus.url, healed.expr, run["started"], run["ended"])) == VICTIMS
    for q in (p50, p90):  # the heal times are seconds after the seeder turned honest, within the check's bound
        values = _range(prometheus.url, q.expr, run["started"], run["ended"])
        assert values and all(0 < v <= 30 for v in values), (q.expr, values)


def test_the_censorship_panel_shows_censored_transactions_and_the_blocks_hold(run: dict[str, Any], prometheus: PrometheusServer) -> None:  # noqa: F811
    censored, delay = _panel(PANELS[1])
    assert max(_range(prometheus.url, censored.expr, run["started"], run["ended"])) > 0
    held = _range(prometheus.url, delay.expr, run["started"], run["ended"])
    # histogram_quantile interpolates inside the bucket holding the hold (20-30 s for 28.5 s)
    assert held and all(20 <= v <= 30 for v in held) and HELD <= 30, held
    total = prometheus.query("sum(harness_attacker_censored_transactions_total)")
    assert float(total[0]["value"][1]) >= 3 * 2 * VICTIMS  # every victim tx reached at least one attacker
