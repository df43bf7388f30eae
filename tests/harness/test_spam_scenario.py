"""scenarios/spam-ban.yaml end to end on the local backend, through the real CLI: every spam
behaviour, run by real `harness-node attack` processes against real node processes under the `ban`
and the 28.0 `disconnect` policies, gets the score and outcome the node's misbehaviour table gives,
in time, and no honest node is banned. Expected values come from the table (the report computes
them with harness_node.attack.behaviours.expect); nothing here restates a score."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from harness_node.attack.behaviours import BEHAVIOURS

from tests.harness.scenario_cli import run_scenario

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parents[2]
SCENARIO = ROOT / "scenarios" / "spam-ban.yaml"
WITHIN = 30.0  # the scenario's spam_banned bound


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    run_dir = tmp_path_factory.mktemp("spam") / "run"
    run_scenario(SCENARIO, run_dir)
    return json.loads((run_dir / "report" / "report.json").read_text())


def test_every_behaviour_ran_against_every_target_of_both_policies(report: dict[str, Any]) -> None:
    runs = report["spam"]["runs"]
    seen = {(r["behaviour"], r["policy"]) for r in runs}
    assert seen == {(b, p) for b in BEHAVIOURS for p in ("ban", "disconnect")}
    assert len(runs) == len(BEHAVIOURS) * 6  # 3 targets per policy
    errors = [f"{r['attacker']} -> {r['target']}: {r['error']}" for r in runs if r["error"]]
    assert not errors, errors


@pytest.mark.parametrize("policy", ["ban", "disconnect"])
@pytest.mark.parametrize("behaviour", list(BEHAVIOURS))
def test_each_behaviour_gets_the_tables_score_and_outcome_in_time(report: dict[str, Any], behaviour: str,
                                                                  policy: str) -> None:
    runs = [r for r in report["spam"]["runs"] if r["behaviour"] == behaviour and r["policy"] == policy]
    assert runs
    for r in runs:
        assert (r["observed_score"], r["observed_outcome"]) == (r["expected_score"], r["expected_outcome"]), (
            f"{r['attacker']} vs {r['target']} ({policy}): the table says {r['expected_score']} points and "
            f"{r['expected_outcome']}; the node charged {r['observed_score']} and {r['observed_outcome']}")
        if r["expected_outcome"] in ("banned", "discouraged", "disconnected"):
            assert r["seconds_to_react"] is not None and r["seconds_to_react"] <= WITHIN, r


def test_no_honest_node_banned_and_the_checks_agree(report: dict[str, Any]) -> None:
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["no_honest_banned"]["verdict"] == "pass", checks["no_honest_banned"]
    assert report["bans"]["honest_banned"] == []
    spam_ok = all(r["as_expected"] for r in report["spam"]["runs"])
    assert checks["spam_banned"]["verdict"] == ("pass" if spam_ok else "fail"), checks["spam_banned"]


def test_the_victims_overhead_is_measured_against_the_bystanders(report: dict[str, Any]) -> None:
    load = report["spam"]["load"]
    attacked = {n["node"] for n in load["nodes"] if n["attacked"]}
    assert attacked == {r["target"] for r in report["spam"]["runs"]}
    assert len(load["nodes"]) - len(attacked) == 2  # the bystanders
    overhead = load["overhead"]
    assert overhead["bytes_ratio"] is not None and overhead["bytes_ratio"] > 1  # megabytes of spam vs a light tx load
    assert overhead["cpu_ratio"] is not None
