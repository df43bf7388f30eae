"""`harness run scenarios/mixed-bitcoind.yaml --monitor`, the whole run, with two real bitcoinds
(scripts/fetch-bitcoind.sh; with CI=true a missing binary fails) and Debian's real Prometheus:

- the run passes its checks (wallet payments cross the light network, every light node keeps
  outbound peers, the light nodes ban the spammers as their table says);
- while it runs, Prometheus scrapes each bitcoind's `harness_bitcoind_*` metrics from its RPC, the
  two bitcoind panels of the dashboards return series, and the spam shows: a scored peer dropped;
- report.json puts each spam behaviour's result at each bitcoind (from its debug log and RPC) next
  to the light nodes': Bitcoin SV 1.0.13 scores 100 pre-version pings to 100 and disconnects the
  spammer without banning it (a loopback peer is local to it), where the light node bans;
- at the end nothing of the run is left: no bitcoind, no Prometheus.

Run it in a private network namespace (README, Testing). Takes about 2 minutes.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from grafana import verify
from grafana.boards import BITCOIND_PANELS
from harness.backends.local import processes as lw
from harness.run.rundir import RunDir
from tests.bitcoind import require_bitcoind
from tests.observability.waiting import wait_until
from tests.real import require

pytestmark = [pytest.mark.slow, pytest.mark.bitcoind, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parents[2]
SCENARIO = ROOT / "scenarios" / "mixed-bitcoind.yaml"
HARNESS = str(Path(sys.executable).parent / "harness")
BITCOINDS = ("bitcoind-0", "bitcoind-1")


def _query(url: str, expr: str) -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"{url}/api/v1/query?query={urllib.parse.quote(expr)}", timeout=10) as r:
        return json.load(r)["data"]["result"]


def _by_node(url: str, expr: str) -> dict[str, float]:
    return {s["metric"].get("node", ""): float(s["value"][1]) for s in _query(url, expr)}


def test_the_mixed_bitcoind_scenario_runs_to_the_end(tmp_path: Path) -> None:
    require("prometheus")
    require("promtool")
    env = {**os.environ, "HARNESS_BITCOIND": str(require_bitcoind())}
    run_dir = tmp_path / "run"
    proc = subprocess.Popen([HARNESS, "run", str(SCENARIO), "--run-dir", str(run_dir), "--monitor", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env)
    try:
        line = proc.stderr.readline()  # type: ignore[union-attr]  # not a terminal: the URL alone, on stderr
        match = re.fullmatch(r"prometheus (http://127\.0\.0\.1:\d+)\n", line)
        assert match, line + (proc.stderr.read() if proc.poll() is not None else "")  # type: ignore[union-attr]
        url = match.group(1)
        # funded before the timeline: 101 blocks each, in turn, on one chain through the light nodes
        wait_until(lambda: (h := _by_node(url, "harness_bitcoind_chain_height")).keys() == set(BITCOINDS)
                   and min(h.values()) >= 202, 150, "both bitcoinds at height >= 202 in Prometheus")
        peers = _by_node(url, 'harness_bitcoind_peers{direction="outbound"}')
        assert peers == {b: 8.0 for b in BITCOINDS}, peers  # each dials its 8 planned light nodes (-connect)
        # the spam (from 30 s): a scored peer that bitcoind let go, counted from its RPC
        wait_until(lambda: _by_node(url, 'harness_bitcoind_misbehaving_peers_left_total{action="disconnect"} > 0'),
                   150, "a bitcoind to drop a spammer")
        panels = [q for q in verify.queries() if (q.dashboard, q.panel) in BITCOIND_PANELS]
        assert {(q.dashboard, q.panel) for q in panels} == BITCOIND_PANELS
        assert verify.evaluate(url, panels) == [], "bitcoind panels with no series"
        stdout, stderr = proc.communicate(timeout=400)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, stdout + stderr
    assert json.loads(stdout)["verdict"] == "pass", stdout

    report = json.loads((run_dir / "report" / "report.json").read_text())
    assert sorted(report["bitcoind"]) == list(BITCOINDS)
    runs = report["spam"]["runs"]
    at_bitcoind = {(r["behaviour"], r["target"]): r for r in runs if r["target_kind"] == "bitcoind"}
    assert {t for _, t in at_bitcoind} == set(BITCOINDS)
    for b in BITCOINDS:
        pings = at_bitcoind[("pre-version-message", b)]
        assert (pings["observed_score"], pings["observed_outcome"]) == (100, "disconnected"), pings
    light = [r for r in runs if r["target_kind"] == "light"]
    assert light and all(r["as_expected"] for r in light), light
    rows = {(b["behaviour"], b["target_kind"]) for b in report["spam"]["by_behaviour"]}
    assert {("pre-version-message", "bitcoind"), ("pre-version-message", "light")} <= rows
    summary = (run_dir / "report" / "summary.md").read_text()
    assert re.search(r"\| pre-version-message \| bitcoind \| ban \| 0 / 2 \| 100 \| 100 \| banned \| disconnected \|", summary)

    state = RunDir(run_dir).load_state()
    bitcoinds = [r for r in lw.records(state) if r.kind == "bitcoind"]
    assert len(bitcoinds) == 2 and lw.live_groups({r.pgid for r in bitcoinds}) == {}
    with pytest.raises(OSError):
        urllib.request.urlopen(f"{url}/-/ready", timeout=3)
