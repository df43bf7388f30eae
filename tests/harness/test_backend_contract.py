"""The backend contract names no process: run ids, labels, the run state, members, logs and the
teardown summary, checked on the contract's types and on a real local deploy (real `harness-node`
processes on loopback)."""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import json
import re
from pathlib import Path
from collections.abc import Iterator
from typing import Any

from typer.testing import CliRunner

from harness.backends import registry
from harness.backends.base import Backend, DownSummary, MemberStatus, RunState, labels_for, new_run_id
from harness.cli import app as cli_app
from harness.plan.planner import LoopbackAllocator, plan
from harness.run import runner
from harness.run.rundir import RunDir
from harness.scenario import parse_scenario

PROCESS_WORDS = re.compile(r"\b(pid|pgid|pids|process_group|node_hosts)\b")
# Kubernetes label values: at most 63 characters, alphanumeric at both ends, - _ . inside.
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
LABEL_KEY = re.compile(r"^([a-z0-9.-]+/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")

class AsideAllocator(LoopbackAllocator):
    """/16s no shipped scenario uses (nor test_attackers.py), so this network never meets another test's."""

    HONEST_GROUPS = range(205, 207)


TWO_NODES = """\
name: contract
seed: 2
duration: 30s
network:
  nodes: 2
  time_scale: 0.05
seeder:
  enabled: false
"""


def test_labels_are_a_pure_function_of_run_and_member_and_valid_kubernetes_labels() -> None:
    run = new_run_id()
    labels = labels_for(run, "node-12", "honest", "quickstart")
    assert labels == labels_for(run, "node-12", "honest", "quickstart")  # pure
    assert labels["harness.io/run"] == run and labels["harness.io/member"] == "node-12"
    assert labels["harness.io/role"] == "honest"
    assert labels_for(new_run_id(), "node-12", "honest")["harness.io/run"] != run  # two runs never share a selector
    for key, value in labels.items():
        assert LABEL_KEY.match(key), key
        assert len(value) <= 63 and LABEL_VALUE.match(value), (key, value)
    long_name = labels_for(run, "node-1", "honest", "s" * 100)["harness.io/scenario"]
    assert len(long_name) == 63


def test_run_ids_are_short_random_and_recorded_in_every_new_state() -> None:
    ids = {new_run_id() for _ in range(100)}
    assert len(ids) == 100 and all(re.fullmatch(r"[0-9a-f]{8}", i) for i in ids)
    assert RunState(scenario="s", backend="local", plan_digest="d").run_id != RunState("s", "local", "d").run_id


def test_nothing_in_the_contract_names_a_process() -> None:
    for cls in (RunState, DownSummary, MemberStatus):
        names = [f.name for f in dataclasses.fields(cls)]
        assert not [n for n in names if PROCESS_WORDS.search(n)], (cls.__name__, names)
    for name, method in inspect.getmembers(Backend, inspect.isfunction):
        if name.startswith("_"):
            continue
        params = list(inspect.signature(method).parameters)
        assert not [p for p in params if PROCESS_WORDS.search(p) or p == "watch_parent"], (name, params)
    required = {"up", "start_controller", "wait_ready", "down", "members", "logs", "stop_node", "pause_node",
                "resume_node", "restart_node", "replace_seeder", "transport_for"}
    assert required <= {name for name, _ in inspect.getmembers(Backend, inspect.isfunction)}


def test_the_clis_backend_choices_are_the_registrys() -> None:
    assert [b.value for b in cli_app.Backend] == registry.names() == ["local", "docker", "k8s"]
    result = CliRunner().invoke(cli_app.app, ["run", "--help"], env={"COLUMNS": "200", "NO_COLOR": "1"})
    assert result.exit_code == 0
    assert all(name in result.stdout for name in registry.names())


def test_options_reach_only_the_backend_that_takes_them(tmp_path: Path) -> None:
    backend = registry.make_backend("local", RunDir(tmp_path / "run"), watch_parent=True, image="not-for-local")
    assert backend.watch_parent is True  # type: ignore[attr-defined]


def _keys(value: Any) -> set[str]:
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in _keys(v)}
    if isinstance(value, list):
        return {k for v in value for k in _keys(v)}
    return set()


@contextlib.contextmanager
def local_deploy(tmp_path: Path, scenario: str, ready_within: float = 30) -> Iterator[tuple[Any, RunDir, Backend]]:
    """(plan, run dir, backend) of a real local deploy of `scenario`, up and ready; the body's
    exceptions pass through after a down()."""
    planned = plan(parse_scenario(scenario), allocator=AsideAllocator())
    run = RunDir(tmp_path / "run")
    backend = registry.make_backend("local", run)
    backend.up(planned)
    try:
        backend.wait_ready(timeout=ready_within)
        yield planned, run, backend
    finally:
        if backend.members() and any(m.alive for m in backend.members()):
            backend.down()


def test_a_local_deploy_records_endpoints_and_a_backend_record_and_status_shows_members_not_pids(tmp_path: Path) -> None:
    with local_deploy(tmp_path, TWO_NODES) as (planned, run, backend):
        saved = json.loads(run.state_file.read_text())
        assert re.fullmatch(r"[0-9a-f]{8}", saved["run_id"]) and saved["plan_digest"] == planned.digest
        # pids live only inside the backend's own record
        outside = {k: v for k, v in saved.items() if k != "backend_state"}
        assert not {k for k in _keys(outside) if PROCESS_WORDS.search(k)}
        assert "pid" in _keys(saved["backend_state"])
        # every node's endpoints are reported; locally a node answers at its planned address
        assert saved["endpoints"] == {n.name: {"p2p": n.endpoint, "control_url": f"http://{n.address}:{n.control_port}"}
                                      for n in planned.peers()}
        assert backend.transport_for(planned) == {}
        worker = json.loads((run.workers_dir / "worker-0.json").read_text())
        assert all("endpoints" not in n and "inbound_hosts" not in n for n in worker["nodes"])  # identity
        assert (run.workers_dir / "worker-0.json").stat().st_mode & 0o777 == 0o600  # it holds the token

        status = runner.status(run.path)
        assert [(m["name"], m["kind"], m["nodes"], m["alive"]) for m in status["members"]] == [("worker-0", "worker", 2, True)]
        assert not {k for k in _keys(status) if PROCESS_WORDS.search(k)}
        assert status["run_id"] == saved["run_id"]
        assert isinstance(backend.logs("worker-0"), str)
        summary = backend.down()
    assert summary.removed == {"process": 1} and summary.left == {"process": []} and summary.clean
    assert not backend.members()[0].alive
