"""`harness deploy / status / inject / report / down / run`: exit codes, what they print, and that
they leave nothing behind. CliRunner in-process where the output is the point; real subprocesses
where a terminal, a pipe or a signal matters."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import weakref
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from harness.cli import render
from harness.run import progress, runner
from harness.backends.local import processes as lw
from harness.cli.app import app
from harness.cli.options import ctrl_c_sets_flag
from harness.errors import ExitCode
from harness.run.rundir import RunDir, RunState
from tests.harness.test_teardown import assert_nothing_left, phase, wait_until

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.timeout(120)

ANSI = re.compile(r"\x1b\[")
COMMANDS = ("validate", "plan", "deploy", "run", "status", "inject", "report", "down")

HONEST_SIX = """\
name: six
seed: 7
duration: {duration}
network:
  nodes: 6
  relay_policy: diffusion
  time_scale: 0.05
seeder:
  enabled: false
workload:
  tx_rate: 2
  start: 1s
  stop: 2s
expect:
  - check: no_honest_banned
{extra}"""
# Nothing relays a transaction to 90 % of the nodes within a millisecond (the diffusion delay alone
# is ~100 ms at this time scale), so this check fails whatever the network does.
IMPOSSIBLE = """\
  - check: tx_propagation
    quantile: 90
    below: 1ms
"""

cli = CliRunner()


def scenario(tmp_path: Path, duration: str = "60s", extra: str = "") -> Path:
    path = tmp_path / "six.yaml"
    path.write_text(HONEST_SIX.format(duration=duration, extra=extra))
    return path


def harness(*args: str) -> list[str]:
    """The `harness` console script of this interpreter (no reliance on PATH)."""
    script = Path(sys.executable).parent / "harness"
    return [str(script), *args] if script.exists() else [sys.executable, "-c", "from harness.cli.app import main; main()", *args]


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run commands from an empty directory, so ./runs is this test's own."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


# --- without a network ------------------------------------------------------------------------------

def test_help_lists_every_command() -> None:
    result = cli.invoke(app, ["--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for command in COMMANDS:
        assert re.search(rf"^\W*{command}\s", result.stdout, re.MULTILINE), command


def test_deploy_help_says_ctrl_c_does_not_tear_down_and_how_to_stop() -> None:
    result = cli.invoke(app, ["deploy", "--help"], env={"COLUMNS": "200"})
    assert "keeps running until `harness down`" in " ".join(result.stdout.split())


@pytest.mark.parametrize("command", ["run", "deploy"])
def test_an_unknown_backend_is_refused_before_anything_starts(command: str, in_tmp: Path) -> None:
    result = cli.invoke(app, [command, str(scenario(in_tmp)), "--backend", "nomad"])
    assert result.exit_code == ExitCode.INVALID_INPUT
    assert "'nomad' is not one of" in result.stderr
    assert not (in_tmp / "runs").exists()


def test_active_attackers_render_for_docker(in_tmp: Path) -> None:
    spam = ROOT / "scenarios" / "spam-ban.yaml"
    result = cli.invoke(app, ["render", str(spam), "--backend", "docker", "--out", str(in_tmp / "docker")])
    assert result.exit_code == 0, result.stderr
    compose = (in_tmp / "docker" / "compose.yaml").read_text()
    assert "    - attack\n" in compose and "harness.io/role: attacker" in compose, compose[:2000]


def test_active_attackers_render_for_k8s(in_tmp: Path) -> None:
    """The k8s backend places them (one StatefulSet per attacker entry; docs/kubernetes.md)."""
    from tests.k8s.chart import need

    need("helm_python")  # fails with CI=true instead of skipping
    spam = ROOT / "scenarios" / "spam-ban.yaml"
    result = cli.invoke(app, ["render", str(spam), "--backend", "k8s", "--out", str(in_tmp / "k8s")])
    assert result.exit_code == 0, result.stderr
    manifests = (in_tmp / "k8s" / "manifests.yaml").read_text()
    assert "kind: StatefulSet" in manifests and '"attack", "--config"' in manifests.replace("'", '"')


def test_an_unknown_action_exits_2_and_lists_the_actions(in_tmp: Path) -> None:
    result = cli.invoke(app, ["inject", "kill_node", "node-0"])
    assert result.exit_code == ExitCode.INVALID_INPUT
    assert "unknown action 'kill_node'" in result.stderr
    for action in ("inject_tx", "stop_node", "pause_node", "resume_node", "restart_node"):
        assert action in result.stderr


@pytest.mark.parametrize("param, problem", [
    ("count", "expected KEY=VALUE"),
    ("count=many", "parameter count"),
    ("count=0", "parameter count"),
    ("duration=10s", "unknown parameter 'duration'"),
])
def test_a_bad_action_parameter_exits_2_naming_it(param: str, problem: str, in_tmp: Path) -> None:
    result = cli.invoke(app, ["inject", "inject_tx", "node-0", "-p", param])
    assert result.exit_code == ExitCode.INVALID_INPUT
    assert problem in result.stderr and "Traceback" not in result.output


def test_parameters_are_read_as_yaml_scalars() -> None:
    from harness.cli.app import _parse_params

    assert _parse_params(["count=3", "wipe_datadir=true", "mode=poison", "after=10s", "share=0.5"]) == {
        "count": 3, "wipe_datadir": True, "mode": "poison", "after": "10s", "share": 0.5}


@pytest.mark.parametrize("args", [["status"], ["report"], ["inject", "inject_tx", "node-0"]])
def test_with_no_run_commands_say_so_and_exit_2(args: list[str], in_tmp: Path) -> None:
    result = cli.invoke(app, args)
    assert result.exit_code == ExitCode.INVALID_INPUT
    assert "no run under ./runs" in result.stderr and "harness deploy" in result.stderr


def test_down_with_no_run_is_fine(in_tmp: Path) -> None:
    result = cli.invoke(app, ["down"])
    assert result.exit_code == 0 and result.stdout.startswith("nothing to stop")


def test_the_most_recently_deployed_run_is_picked_and_named(in_tmp: Path) -> None:
    for name, created in (("older", 100.0), ("newer", 200.0)):
        run = RunDir(in_tmp / "runs" / name)
        run.create()
        run.save_state(RunState(scenario=name, backend="local", plan_digest="d", status="stopped", created_at=created))
    result = cli.invoke(app, ["down"])
    assert result.exit_code == 0
    assert "runs/newer (the most recently deployed run)" in result.stderr
    assert "runs/newer" in result.stdout


# --- progress hooks and rendering, without processes -----------------------------------------------

def test_the_watcher_reports_node_start_up_phases_and_executed_actions(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "run")
    run.create()
    events: list[tuple[str, dict]] = []
    watcher = progress.RunWatcher(run, lambda name, data: events.append((name, data)), total_nodes=6, duration=10.0)
    watcher.tick()
    assert events == []  # nothing written yet
    state = RunState(scenario="six", backend="local", plan_digest="d")
    state.started_nodes = [f"node-{i}" for i in range(4)]
    run.save_state(state)
    watcher.tick()
    assert events.pop() == (progress.NODES_STARTED, {"started": 4, "total": 6})
    run.write_json(run.results_file, {"phase": "timeline", "started_at": state.created_at})
    run.append_journal({"type": "event", "at": 1.0, "action": "inject_tx", "target": "node-2", "ok": False,
                        "error": "HTTP 500"})
    run.append_journal({"type": "item", "kind": "tx"})  # not an action: not reported
    watcher.tick()
    names = [name for name, _ in events]
    assert names == [progress.NODES_READY, progress.TIMELINE_STARTED, progress.TIMELINE_PROGRESS, progress.TIMELINE_EVENT]
    assert events[-1][1] == {"at": 1.0, "action": "inject_tx", "target": "node-2", "ok": False, "error": "HTTP 500"}
    events.clear()
    watcher.tick()
    assert [name for name, _ in events] == [progress.TIMELINE_PROGRESS]  # each action is reported once


def test_the_watcher_parses_a_file_again_only_when_it_was_replaced(tmp_path: Path, monkeypatch) -> None:
    run = RunDir(tmp_path / "run")
    run.create()
    state = RunState(scenario="six", backend="local", plan_digest="d")
    state.started_nodes = ["node-0"]
    run.save_state(state)
    run.write_json(run.results_file, {"phase": "timeline", "started_at": state.created_at})
    events: list[tuple[str, dict]] = []
    watcher = progress.RunWatcher(run, lambda name, data: events.append((name, data)), total_nodes=2, duration=10.0)
    parsed: list[int] = []
    real_loads = progress.json.loads
    monkeypatch.setattr(progress.json, "loads", lambda text: parsed.append(len(text)) or real_loads(text))
    watcher.tick()
    assert len(parsed) == 2  # state.json and results.json
    for _ in range(3):
        watcher.tick()
    assert len(parsed) == 2  # unchanged files: not read again (a 10,000-node results.json is 23 MB)
    state.started_nodes = ["node-0", "node-1"]
    run.save_state(state)
    watcher.tick()
    assert len(parsed) == 3 and (progress.NODES_STARTED, {"started": 2, "total": 2}) in events


def test_the_progress_display_logs_finished_steps_and_failed_actions() -> None:
    console = Console(record=True, width=120, force_terminal=False)
    display = render.ProgressDisplay(console, "starting")
    with display.progress:
        display(progress.STARTING_NODES, {"total": 6})
        display(progress.NODES_STARTED, {"started": 6, "total": 6})
        display(progress.WAITING_FOR_NODES, {"total": 6})
        display(progress.NODES_READY, {"ready": 6, "total": 6})
        display(progress.TIMELINE_EVENT, {"at": 1.5, "action": "stop_node", "target": "node-3", "ok": False,
                                          "error": "BackendError: node-3 still holds its port"})
    text = console.export_text()
    assert "✓ 6 nodes started" in text and "✓ 6/6 nodes ready" in text
    assert "1.5s  stop_node node-3  error: BackendError: node-3 still holds its port" in text


# --- against a real network -------------------------------------------------------------------------

def test_deploy_status_inject_report_down(in_tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = scenario(in_tmp)
    run_dir = in_tmp / "runs" / "six"
    try:
        deployed = cli.invoke(app, ["deploy", str(path)])
        assert deployed.exit_code == 0, deployed.output
        line = deployed.stdout.strip()
        assert len(line.splitlines()) == 1 and not ANSI.search(deployed.stdout)
        assert line.startswith(f"deployed: six, 6 nodes, run dir {run_dir}, controller http://127.0.0.1:")

        status = cli.invoke(app, ["status", "--json"])
        assert status.exit_code == 0, status.output
        info = json.loads(status.stdout)
        assert sorted(info["nodes"]) == [f"node-{i}" for i in range(6)]
        assert info["running"] and all(n["reachable"] for n in info["nodes"].values())  # deploy waited for them
        assert {"mempool", "inbound", "outbound", "height"} <= set(info["nodes"]["node-0"])

        with monkeypatch.context() as terminal:
            terminal.setattr(render, "is_terminal", lambda: True)  # a person at a terminal gets tables
            table = cli.invoke(app, ["status"], env={"COLUMNS": "150"})
        assert "nodes (6/6 up)" in table.stdout and "propagation" in table.stdout and "bans: " in table.stdout

        injected = cli.invoke(app, ["inject", "inject_tx", "node-0", "-p", "count=2"])
        assert injected.exit_code == 0, injected.output
        assert injected.stdout.startswith("ok: inject_tx on node-0 (txids [")
        assert "runs/six (the most recently deployed run)" in injected.stderr
        injected_ids = json.loads(injected.stdout.split("txids ", 1)[1].rstrip(")\n"))
        assert [e["item_id"] for e in RunDir(run_dir).read_journal("item")][-2:] == injected_ids

        assert cli.invoke(app, ["inject", "inject_tx", "node-9"]).exit_code == ExitCode.INVALID_INPUT

        reported = cli.invoke(app, ["report", "--run-dir", str(run_dir), "--json"])
        outcome = json.loads(reported.stdout)
        assert reported.exit_code == (0 if outcome["verdict"] == "pass" else 1)
        assert outcome["verdict"] == "pass", outcome["checks"]  # honest nodes must not ban each other
        assert outcome["report_dir"] == str(run_dir / "report")
        for name in ("report.json", "junit.xml", "summary.md", "propagation.png"):
            assert (run_dir / "report" / name).is_file(), name

        first = cli.invoke(app, ["down"])
        assert first.exit_code == 0, first.output
        assert first.stdout.startswith("stopped six: worker-0, controller")
        assert_nothing_left(RunDir(run_dir))
        again = cli.invoke(app, ["down", "--run-dir", str(run_dir)])
        assert again.exit_code == 0 and again.stdout.startswith("nothing running")
    finally:
        runner.down(run_dir)


def test_run_with_a_failing_check_exits_1_and_says_so_in_junit_without_escape_codes(tmp_path: Path) -> None:
    path = scenario(tmp_path, duration="3s", extra=IMPOSSIBLE)
    proc = subprocess.run(harness("run", str(path)), cwd=tmp_path, capture_output=True, text=True, timeout=90)
    assert proc.returncode == ExitCode.CHECKS_FAILED, proc.stderr
    report_dir = tmp_path / "runs" / "six" / "report"
    assert proc.stdout == (f"fail: six, 1 of 2 checks did not pass (tx_propagation); report in {report_dir}\n")
    assert not ANSI.search(proc.stdout + proc.stderr)
    suite = ET.parse(report_dir / "junit.xml").getroot()
    assert suite.get("failures") == "1"
    failed = [case.get("name") for case in suite.iter("testcase") if case.find("failure") is not None]
    assert failed == ["tx_propagation"]
    assert_nothing_left(RunDir(tmp_path / "runs" / "six"))


def test_a_run_interrupted_by_sigint_exits_130_and_leaves_no_process(tmp_path: Path) -> None:
    path = scenario(tmp_path, duration="60s")
    run = RunDir(tmp_path / "runs" / "six")
    proc = subprocess.Popen(harness("run", str(path), "--json"), cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: phase(run) == "timeline", what="the timeline to start")
        pids = {p.pid for p in lw.records(run.load_state())}
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == ExitCode.INTERRUPTED, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr
    assert stdout == ""
    assert pids and not any(lw.is_ours(p) for p in lw.records(run.load_state()))
    assert_nothing_left(run)


def test_ctrl_c_while_following_a_deploy_leaves_the_network_running(tmp_path: Path) -> None:
    path = scenario(tmp_path)
    run_dir = tmp_path / "runs" / "six"
    proc = subprocess.Popen(harness("deploy", str(path), "--wait"), cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith("deployed: six, 6 nodes")  # printed before following
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=30)
        assert proc.returncode == 0, stderr
        assert "the network keeps running" in stderr and "harness down" in stderr
        assert runner.status(run_dir)["running"]
    finally:
        if proc.poll() is None:
            proc.kill()
        runner.down(run_dir)
    assert_nothing_left(RunDir(run_dir))


class _Finalized:
    """An object whose collection runs a callback, as the garbage collector runs weakref callbacks."""


def _ctrl_c_inside_a_finalizer() -> None:
    """SIGINT handled while the main thread runs a finalizer (the case CI met under `deploy --wait`)."""
    obj = _Finalized()
    weakref.finalize(obj, signal.raise_signal, signal.SIGINT)
    del obj


def test_ctrl_c_during_a_finalizer_still_stops_following(monkeypatch: pytest.MonkeyPatch) -> None:
    # The premise: with Python's own handler, the KeyboardInterrupt raised there is "ignored" and lost.
    lost: list[BaseException | None] = []
    monkeypatch.setattr(sys, "unraisablehook", lambda u: lost.append(u.exc_value))
    _ctrl_c_inside_a_finalizer()  # would raise here if it were not lost
    assert len(lost) == 1 and isinstance(lost[0], KeyboardInterrupt)
    with ctrl_c_sets_flag() as pressed:
        _ctrl_c_inside_a_finalizer()
        assert pressed.is_set()
    assert len(lost) == 1
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_deploy_interrupted_while_starting_exits_130_and_leaves_no_process(tmp_path: Path) -> None:
    path = scenario(tmp_path)
    run = RunDir(tmp_path / "runs" / "six")
    proc = subprocess.Popen(harness("deploy", str(path)), cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        # as soon as the first process exists, before the deploy has finished
        wait_until(lambda: run.state_file.exists() and lw.records(run.load_state()), what="the first process")
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == ExitCode.INTERRUPTED, stderr
    assert "Traceback" not in stderr
    assert_nothing_left(run)
