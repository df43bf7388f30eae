"""Checks judged on a live local network: a ban between honest nodes makes `no_honest_banned` fail,
with the banned node named (the node lists a one-address ban as "ip/32", as Core does)."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest

from harness.plan.planner import plan_file
from harness.run import runner
from harness.run.rundir import RunDir
from tests.harness.test_teardown import assert_nothing_left

pytestmark = pytest.mark.timeout(120)

SCENARIO = """\
name: honest-ban
seed: 3
duration: 10m
network:
  nodes: 4
  time_scale: 0.05
seeder:
  enabled: false
expect:
  - check: no_honest_banned
"""


def post(url: str, token: str, body: dict) -> int:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.status


def test_no_honest_banned_fails_and_names_the_node_when_one_honest_node_bans_another(tmp_path: Path) -> None:
    path = tmp_path / "honest-ban.yaml"
    path.write_text(SCENARIO)
    run_dir = tmp_path / "run"
    plan = plan_file(path)
    try:
        state = runner.deploy(path, run_dir=run_dir, wait=True)
        banning, banned = plan.node("node-0"), plan.node("node-1")
        url = f"http://{banning.address}:{banning.control_port}/bans"
        assert post(url, state.control_token, {"address": banned.address, "reason": "test"}) == 200
        report, _ = runner.report(run_dir)
    finally:
        runner.down(run_dir)
    check = next(c for c in report.checks if c.name == "no_honest_banned")
    assert check.verdict.value == "fail" and check.value == 1
    ban = next(b for b in report.bans if b.banning_node == "node-0")
    assert ban.banned_node == "node-1" and not ban.banned_is_attacker
    assert_nothing_left(RunDir(run_dir))
