"""`harness run` leaves nothing behind: not when interrupted, not when killed, not when it ends."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from harness.plan.model import Plan
from harness.backends.local import processes as lw
from harness.errors import ExitCode
from harness.run.rundir import RunDir
from tests.waiting import wait_until

pytestmark = pytest.mark.timeout(120)

SCENARIO = """\
name: teardown
seed: 5
duration: {duration}
network:
  nodes: 8
  time_scale: 0.05
seeder:
  enabled: false
workload:
  tx_rate: 1
  start: 1s
  stop: 2s
expect:
  - check: no_honest_banned
"""


def start_run(tmp_path: Path, duration: str = "60s") -> tuple[subprocess.Popen[bytes], RunDir, Path]:
    scenario = tmp_path / "teardown.yaml"
    scenario.write_text(SCENARIO.format(duration=duration))
    run, out = RunDir(tmp_path / "run"), tmp_path / "report"
    code = ("import sys; from harness.run.runner import run; "
            f"sys.exit(run({str(scenario)!r}, out_dir={str(out)!r}, run_dir={str(run.path)!r}))")
    return subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE), run, out




def workers_recorded(run: RunDir) -> bool:
    try:
        return any(p.kind == "worker" for p in lw.records(run.load_state()))
    except Exception:  # state.json not written yet
        return False


def phase(run: RunDir) -> str | None:
    try:
        return json.loads(run.results_file.read_text()).get("phase")
    except (FileNotFoundError, ValueError):
        return None


def assert_nothing_left(run: RunDir) -> None:
    state = run.load_state()
    pgids = {p.pgid for p in lw.records(state)}
    wait_until(lambda: not lw.live_groups(pgids), timeout=15, what="every recorded process group to exit")
    plan = Plan.from_json(run.plan_file.read_text())
    assert [n.name for n in plan.peers() if lw.port_is_bound(n.address, n.p2p_port) or lw.port_is_bound(n.address, n.control_port)] == []


def test_sigint_during_start_up_tears_down_and_exits_130(tmp_path: Path) -> None:
    proc, run, _ = start_run(tmp_path)
    wait_until(lambda: workers_recorded(run), what="the first worker to be spawned")
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=30) == ExitCode.INTERRUPTED
    assert_nothing_left(run)
    assert run.load_state().status == "stopped"


def test_sigint_during_the_timeline_tears_down_and_exits_130(tmp_path: Path) -> None:
    proc, run, _ = start_run(tmp_path)
    wait_until(lambda: phase(run) == "timeline", what="the timeline to start")
    wait_until(lambda: run.read_journal("item"), what="the first injected tx")
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=30) == ExitCode.INTERRUPTED
    assert_nothing_left(run)


def test_a_killed_run_takes_its_workers_with_it(tmp_path: Path) -> None:
    """SIGKILL leaves no chance for try/finally: the workers' parent-death signal is the safety net."""
    proc, run, _ = start_run(tmp_path)
    wait_until(lambda: phase(run) == "timeline", what="the timeline to start")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    assert_nothing_left(run)


def test_a_complete_run_reports_passes_and_leaves_nothing(tmp_path: Path) -> None:
    proc, run, out = start_run(tmp_path, duration="4s")
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == ExitCode.OK, stderr.decode()[-2000:]
    assert_nothing_left(run)
    assert len(run.read_journal("item")) == 1  # the one tx the workload injected at 1 s
    assert any(out.iterdir())


def test_ctrl_c_between_starting_a_process_and_recording_it_waits_for_the_record(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The race behind a detached controller that outlived an interrupted deploy: Ctrl-C landing
    after the fork but before the state names the process. It must take effect only once the record
    is saved, so that teardown finds the process. The interrupt is delivered for real (SIGINT to
    this process) at the worst moment: right after the child exists."""
    from harness.backends.base import RunState
    from harness.backends.local.backend import LocalBackend

    run = RunDir(tmp_path / "run")
    run.logs_dir.mkdir(parents=True)
    state = RunState(scenario="race", backend="local", plan_digest="-")
    run.save_state(state)
    real_spawn = lw.spawn

    def spawn_then_interrupted(*args, **kwargs):
        started = real_spawn(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C, while the process is not recorded yet
        return started

    monkeypatch.setattr(lw, "spawn", spawn_then_interrupted)
    with pytest.raises(KeyboardInterrupt):
        LocalBackend(run)._spawn(state, "sleeper", "controller", [sys.executable, "-c", "import time; time.sleep(60)"], [], None)
    records = lw.records(run.load_state())
    try:
        assert [r.name for r in records] == ["sleeper"] and lw.is_ours(records[0])
    finally:
        for r in records:
            os.killpg(r.pgid, signal.SIGKILL)
