"""`harness dashboard` under a real pseudo-terminal against a really deployed quickstart: the screen
shows the run's real figures (nodes up, propagation of the injected transactions, the timeline's
actions) and the view ends on `q` and on Ctrl-C with exit 0, leaving the network running.

Run it in a private network namespace when other runs share the machine (see README, Testing).
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
HARNESS = str(Path(sys.executable).parent / "harness")
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Z0-9]|\r")


def _controlling_terminal() -> None:
    """In the child: a session of its own whose controlling terminal is the pty (stdin), so that
    Ctrl-C typed on it is a SIGINT, as at a real terminal."""
    os.setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class Terminal:
    """`harness dashboard` on the slave side of a pty of 60 x 180 characters."""

    def __init__(self, run_dir: Path) -> None:
        self.master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 60, 180, 0, 0))
        env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "180", "LINES": "60"}
        self.proc = subprocess.Popen([HARNESS, "dashboard", "--run-dir", str(run_dir)], stdin=slave, stdout=slave,
                                     stderr=slave, cwd=ROOT, env=env, preexec_fn=_controlling_terminal)
        os.close(slave)
        self.screen = ""

    def read(self, seconds: float) -> str:
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select([self.master], [], [], left)
            if not ready:
                break
            try:
                chunk = os.read(self.master, 65536)
            except OSError:  # the process exited: the slave side is gone
                break
            if not chunk:
                break
            self.screen += ANSI.sub("", chunk.decode(errors="replace"))
        return self.screen

    def wait_for(self, pattern: str, timeout: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.read(1.0)
            matches = list(re.finditer(pattern, self.screen))
            if matches:
                return matches[-1]  # the latest frame
            assert self.proc.poll() is None, f"the dashboard exited {self.proc.returncode}:\n{self.screen[-3000:]}"
        raise AssertionError(f"{pattern!r} never appeared; last screen:\n{self.screen[-4000:]}")

    def send(self, data: bytes) -> None:
        os.write(self.master, data)

    def wait_exit(self, timeout: float) -> int:
        """The exit code, reading the screen meanwhile: a terminal nobody reads fills up, and the
        view's last frame would block it for ever."""
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None:
            assert time.monotonic() < deadline, f"still running {timeout} s later:\n{self.screen[-2000:]}"
            self.read(0.2)
        return self.proc.returncode

    def close(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)
        os.close(self.master)


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    run_dir = tmp_path_factory.mktemp("dashboard") / "quickstart"
    out = subprocess.run([HARNESS, "deploy", str(ROOT / "scenarios" / "quickstart.yaml"), "--run-dir", str(run_dir)],
                         capture_output=True, text=True, timeout=240, cwd=ROOT)
    assert out.returncode == 0, out.stdout + out.stderr
    try:
        yield run_dir
    finally:
        down = subprocess.run([HARNESS, "down", "--run-dir", str(run_dir)], capture_output=True, text=True, timeout=120)
        assert down.returncode == 0, down.stdout + down.stderr


def test_the_dashboard_shows_the_runs_real_figures_and_quits_on_q(deployed: Path) -> None:
    term = Terminal(deployed)
    try:
        term.wait_for(r"nodes 12/12 up", 30)
        # the workload injects a transaction every 2 s from 10 s on: wait for the controller to see them
        # (items come from the controller's last observation, coverage from live metrics: the
        # first frames may show a tx's coverage before any observation counts it)
        tx = term.wait_for(r"tx\s*│\s*([1-9]\d*)\s*│\s*(\d+)%", 60)
        items, coverage = int(tx.group(1)), int(tx.group(2))
        journal = [json.loads(line) for line in (deployed / "journal.jsonl").read_text().splitlines() if line.strip()]
        injected = sum(1 for e in journal if e.get("type") == "item" and e["kind"] == "tx")
        assert 1 <= items <= injected and 0 < coverage <= 100, (items, injected, coverage)
        term.wait_for(r"inject_tx\s*│\s*node-\d+\s*│\s*ok", 30)  # the timeline's actions, as journaled
        status = json.loads(subprocess.run([HARNESS, "status", "--run-dir", str(deployed), "--json"],
                                           capture_output=True, text=True, timeout=60).stdout)
        inbound = sum(n["inbound"] for n in status["nodes"].values() if n["reachable"])
        assert inbound > 0 and re.search(r"peers \(in / out\)\s*│\s*\d+ / \d+", term.screen)
        term.send(b"q")
        assert term.wait_exit(10) == 0, term.screen[-2000:]
    finally:
        term.close()
    assert json.loads(subprocess.run([HARNESS, "status", "--run-dir", str(deployed), "--json"],
                                     capture_output=True, text=True, timeout=60).stdout)["running"]


def test_the_dashboard_ends_on_ctrl_c(deployed: Path) -> None:
    term = Terminal(deployed)
    try:
        term.wait_for(r"nodes \d+/12 up", 30)
        term.send(b"\x03")  # the terminal turns it into SIGINT for the foreground process
        assert term.wait_exit(10) == 0, term.screen[-2000:]
    finally:
        term.close()


def test_without_a_run_the_dashboard_is_exit_2(tmp_path: Path) -> None:
    out = subprocess.run([HARNESS, "dashboard", "--run-dir", str(tmp_path / "none")], capture_output=True, text=True,
                         timeout=60, cwd=ROOT)
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stdout + out.stderr
