"""`harness deploy --monitor` and `harness down` on the local backend with Debian's real Prometheus:
the generated configuration passes promtool, every node, the seeder and the controller are scraped
(file-based discovery), a stopped node leaves the targets and comes back when started again, and
`down` stops the server. Without prometheus installed, `--monitor` is a clear exit 2 that starts
nothing.

Run it in a private network namespace when other runs share the machine (see README, Testing).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.observability.waiting import wait_until
from tests.real import require

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
HARNESS = str(Path(sys.executable).parent / "harness")
QUICKSTART = str(ROOT / "scenarios" / "quickstart.yaml")


def _harness(*args: str, env: dict[str, str] | None = None, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run([HARNESS, *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=env)


def _api(url: str, path: str) -> Any:
    with urllib.request.urlopen(f"{url}{path}", timeout=10) as r:
        return json.load(r)["data"]


def _up_targets(url: str) -> dict[str, set[str]]:
    up: dict[str, set[str]] = {}
    for t in _api(url, "/api/v1/targets")["activeTargets"]:
        if t["health"] == "up":
            up.setdefault(t["labels"]["job"], set()).add(t["labels"]["instance"])
    return up


def test_deploy_monitor_scrapes_every_member_follows_stops_and_down_stops_it(tmp_path: Path) -> None:
    require("prometheus")
    promtool = require("promtool")
    run_dir = tmp_path / "run"
    out = _harness("deploy", QUICKSTART, "--run-dir", str(run_dir), "--monitor", "--json")
    assert out.returncode == 0, out.stdout + out.stderr
    url = json.loads(out.stdout)["monitor_url"]
    try:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", url), url
        checked = subprocess.run([promtool, "check", "config", str(run_dir / "monitor" / "prometheus.yml")],
                                 capture_output=True, text=True, timeout=60)
        assert checked.returncode == 0, checked.stdout + checked.stderr
        plan = json.loads((run_dir / "plan.json").read_text())
        state = json.loads((run_dir / "state.json").read_text())
        nodes = {n["name"]: f"{n['address']}:{n['control_port']}" for n in plan["nodes"] if n["role"] == "honest"}
        seeder = next(f"{n['address']}:{n['control_port']}" for n in plan["nodes"] if n["role"] == "seeder")
        expected = {"harness-node": set(nodes.values()), "harness-seeder": {seeder},
                    "harness-controller": {state["controller_url"].removeprefix("http://")}}
        wait_until(lambda: _up_targets(url) == expected, 60, f"prometheus to scrape {expected}")

        # a stopped node leaves the discovery file and the targets; started again, it returns
        victim = "node-7"
        assert _harness("inject", "stop_node", victim, "--run-dir", str(run_dir)).returncode == 0
        node_file = run_dir / "monitor" / "targets" / "harness-node.json"
        assert nodes[victim] not in json.loads(node_file.read_text())[0]["targets"]
        wait_until(lambda: nodes[victim] not in _up_targets(url).get("harness-node", set()), 30, f"{victim} to leave")
        assert _harness("inject", "start_node", victim, "--run-dir", str(run_dir)).returncode == 0
        wait_until(lambda: _up_targets(url).get("harness-node") == set(nodes.values()), 30, f"{victim} to be scraped again")
        series = _api(url, "/api/v1/query?query=count%28harness_node_chain_height%29")["result"]
        assert series and float(series[0]["value"][1]) >= len(nodes) - 1

        status = json.loads(_harness("status", "--run-dir", str(run_dir), "--json").stdout)
        assert status["monitor_url"] == url
    finally:
        down = _harness("down", "--run-dir", str(run_dir), "--json")
    assert down.returncode == 0 and json.loads(down.stdout)["clean"], down.stdout + down.stderr
    with pytest.raises(OSError):
        urllib.request.urlopen(f"{url}/-/ready", timeout=3)


def test_monitor_without_prometheus_is_exit_2_naming_the_install_and_starts_nothing(tmp_path: Path) -> None:
    # A PATH holding only the harness's own interpreter directory: no prometheus, no promtool.
    env = {**os.environ, "PATH": str(Path(sys.executable).parent)}
    run_dir = tmp_path / "run"
    for command in ("deploy", "run"):
        out = _harness(command, QUICKSTART, "--run-dir", str(run_dir), "--monitor", env=env, timeout=60)
        assert out.returncode == 2, (command, out.stdout, out.stderr)
        assert "apt-get install prometheus" in out.stderr and "Traceback" not in out.stderr, out.stderr
        assert not (run_dir / "state.json").exists(), f"{command} started something"


def test_run_monitor_prints_the_url_scrapes_while_running_and_takes_prometheus_down(tmp_path: Path) -> None:
    require("prometheus")
    require("promtool")
    run_dir = tmp_path / "run"
    proc = subprocess.Popen([HARNESS, "run", QUICKSTART, "--run-dir", str(run_dir), "--monitor", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        line = proc.stderr.readline()  # type: ignore[union-attr]  # not a terminal: the URL alone, on stderr
        match = re.fullmatch(r"prometheus (http://127\.0\.0\.1:\d+)\n", line)
        assert match, line
        url = match.group(1)
        wait_until(lambda: len(_up_targets(url).get("harness-node", ())) == 12, 60, "the 12 nodes to be scraped")
        wait_until(lambda: _up_targets(url).get("harness-controller"), 60, "the in-process controller to be scraped")
        stdout, stderr = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stdout + stderr
    assert json.loads(stdout)["verdict"] == "pass"
    with pytest.raises(OSError):
        urllib.request.urlopen(f"{url}/-/ready", timeout=3)
