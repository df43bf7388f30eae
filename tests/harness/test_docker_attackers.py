"""Spam attackers on the docker backend, on the real engine: scenarios/docker-spam.yaml run end to
end (`harness run --backend docker` through the runner): four node containers, the seeder, and each
spam identity a `harness-node attack` container of the same image on the run's network, labelled
with the run. Every spammer gets the score and outcome the node's misbehaviour table gives, no
honest node is banned (as on the local backend), and `down` leaves nothing carrying the run's label.

Skipped when no engine answers or the base image is missing (with CI=true: failed, tests/real.py).
Only objects labelled with this test's run id are touched: the engine is shared.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from harness.backends.docker import engine
from harness.backends.images import LOCAL_BASE_IMAGE, build_node_image
from harness.run import progress, runner
from harness.run.rundir import RunDir
from tests.real import docker_engine

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parents[2]
SCENARIO = ROOT / "scenarios" / "docker-spam.yaml"
BASE_IMAGE = os.environ.get("HARNESS_BASE_IMAGE", LOCAL_BASE_IMAGE)
TAG = "harness-node:test-docker-attackers"


@pytest.fixture(scope="module")
def image() -> Iterator[str]:
    client = docker_engine(BASE_IMAGE)
    build_node_image(TAG, BASE_IMAGE, client=client)
    os.environ["HARNESS_IMAGE"] = TAG
    yield TAG
    client.close()


def _labelled(run_id: str) -> list[Any]:
    client = docker.from_env()
    try:
        containers, networks, volumes = engine.of_run(client, run_id)
        return [*containers, *networks, *volumes]
    finally:
        client.close()


@pytest.mark.docker
def test_spammers_in_containers_are_banned_and_no_honest_node_is(image: str, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    seen: dict[str, Any] = {}

    def on_event(name: str, data: dict[str, Any]) -> None:
        if name == progress.TIMELINE_STARTED:  # while the run is up: what the engine holds for it
            client = docker.from_env()
            run_id = RunDir(run_dir).load_state().run_id
            seen["containers"] = {c.labels["harness.io/member"]: (c.labels["harness.io/role"], c.status, c.attrs["Config"]["Cmd"])
                                  for c in engine.of_run(client, run_id)[0]}
            client.close()

    code = runner.run(SCENARIO, "docker", tmp_path / "report", run_dir, on_event=on_event)
    summary = (tmp_path / "report" / "summary.md").read_text()
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    run_id = RunDir(run_dir).load_state().run_id

    # each identity ran in a container of its own, `harness-node attack` of the node image, labelled with the run
    attackers = {m: v for m, v in seen["containers"].items() if v[0] == "attacker"}
    assert sorted(attackers) == ["spam-0", "spam-1", "spam-2"], seen
    assert all(status == "running" and cmd[0] == "attack" for _, status, cmd in attackers.values()), attackers

    # the victims attributed every connection to the identity's planned address, as on loopback
    runs = report["spam"]["runs"]
    assert {r["behaviour"] for r in runs} == {"pre-version-message", "oversized-inv", "duplicate-version"}
    assert len(runs) == 9  # 3 behaviours x 3 victims
    for r in runs:
        assert not r["error"], r
        assert (r["observed_score"], r["observed_outcome"]) == (r["expected_score"], r["expected_outcome"]), r
        assert r["expected_outcome"] == "banned", r
    assert code == 0, summary  # spam_banned and no_honest_banned passed

    # `down` (run's end) removed the attackers with everything else of the run, and nothing else
    assert not _labelled(run_id)


def test_the_same_scenario_file_passes_on_the_local_backend(tmp_path: Path) -> None:
    """scenarios/docker-spam.yaml, unchanged, on local processes (`harness-node attack` on loopback):
    the same checks pass. Needs no engine."""
    code = runner.run(SCENARIO, "local", tmp_path / "report", tmp_path / "run")
    assert code == 0, (tmp_path / "report" / "summary.md").read_text()
