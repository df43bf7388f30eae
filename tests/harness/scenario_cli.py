"""Run a shipped scenario through the real CLI (`harness run`), as a user would, for the end-to-end
tests that read its report."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HARNESS = Path(sys.executable).with_name("harness")
ADDRESSES_BUSY_WAIT = 300.0  # s to wait out another run holding the planned addresses


def run_scenario(scenario: Path, run_dir: Path, timeout: float = 420) -> subprocess.CompletedProcess[str]:
    """`harness run SCENARIO --run-dir RUN_DIR`; another run holding the planned addresses (exit 2,
    "already in use", nothing started) is waited out. Asserts exit 0 or 1 (1: a check failed; the
    caller's tests say which) and that the report was written: exit 1 is also a run that could not
    complete, and then the CLI's own message (and the run's logs, kept in RUN_DIR) say why."""
    deadline = time.monotonic() + ADDRESSES_BUSY_WAIT
    while True:
        out = subprocess.run([str(HARNESS), "run", str(scenario), "--run-dir", str(run_dir)], capture_output=True,
                             text=True, timeout=timeout, cwd=ROOT)
        if out.returncode != 2 or "already in use" not in out.stderr or time.monotonic() > deadline:
            break
        time.sleep(5)
    assert out.returncode in (0, 1), out.stdout + out.stderr
    assert (run_dir / "report" / "report.json").is_file(), \
        f"exit {out.returncode} without a report; logs in {run_dir / 'logs'}\n{out.stdout}{out.stderr}"
    return out
