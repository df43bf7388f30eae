"""Fixtures shared by every test package."""

from __future__ import annotations

import os
import signal
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.bitcoind import bitcoind_factory  # noqa: F401  (a fixture: the real bitcoind, loopback only)


# A shell that starts a command in the background (`cmd &` without job control) makes it ignore
# SIGINT, and an ignored signal stays ignored across exec: every harness CLI the tests start would
# then shrug off the Ctrl-C that the interrupt tests send. A handled signal is reset to the default
# on exec, so the children get Python's usual KeyboardInterrupt whatever launched the test run.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


def _processes_under(root: Path) -> dict[int, str]:
    """Pid -> command line of the processes (not ours) whose command line or working directory is
    inside `root`."""
    prefix, found = str(root), {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry.name}/cmdline", "rb") as f:
                argv = f.read().decode(errors="replace").split("\0")
            cwd = os.readlink(f"/proc/{entry.name}/cwd")
        except OSError:  # gone, or a kernel thread
            continue
        if cwd.startswith(prefix) or any(prefix in arg for arg in argv):
            found[int(entry.name)] = " ".join(argv).strip()
    return found


@pytest.fixture(autouse=True)
def _nothing_outlives_its_test(tmp_path: Path) -> Iterator[None]:
    """Local networks bind fixed loopback addresses (127.1.0.1, ...): a test that fails half-way must
    not leave its nodes or detached controller holding them, or every later local test fails for
    that one. Whatever still runs from the test's directory is killed (pids only: the harness puts
    its processes in their own groups, and a plain subprocess shares pytest's). Tests that check
    teardown assert it themselves; this is the net under a failure, so it only warns."""
    yield
    left = _processes_under(tmp_path)
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    if left:
        warnings.warn(f"killed what the test left running under {tmp_path}: {left}", stacklevel=1)


@pytest.fixture(autouse=True, scope="module")
def _no_listener_outlives_its_module() -> Iterator[None]:
    """Nodes that tests run inside this process (tests/node) listen on loopback addresses that a
    later test's deploy may plan: a listener left open by one test made a run of
    scenarios/bootstrap-poison.yaml 40 minutes later refuse its addresses as in use. So each module
    must close what it opened in this process; the error names what is left and where."""
    from harness.backends.local.sockets import listening

    before = listening()
    yield
    deadline = time.monotonic() + 3.0  # a stop may still be closing its server
    while (left := listening() - before) and time.monotonic() < deadline:
        time.sleep(0.05)
    if left:
        raise AssertionError(f"this module left {len(left)} socket(s) listening in the test process: "
                             f"{sorted(f'{ip}:{port}' + ('/udp' if udp else '') for ip, port, udp in left)[:10]}")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Waits that passed after more than half their timeout (tests/waiting.py): the bounds a slower
    machine would break first."""
    from tests.waiting import NEAR_MISS_SHARE, NEAR_MISSES

    if NEAR_MISSES:
        terminalreporter.section(f"waits that used more than {NEAR_MISS_SHARE:.0%} of their timeout")
        for miss in sorted(NEAR_MISSES, key=lambda m: m.waited / m.timeout, reverse=True):
            terminalreporter.write_line(f"{miss.waited:7.1f} s of {miss.timeout:5.0f} s  {miss.test}: {miss.what}")
