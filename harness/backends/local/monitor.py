"""Prometheus as a process of a local run (`--monitor`): Debian's `prometheus` binary on a free
loopback port, its configuration and discovery files under <run dir>/monitor/, its data there too.

The process is recorded and stopped like every other member (backend.py); this module finds the
binaries, checks the configuration with `promtool` and waits until the server is ready.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from harness.errors import BackendError, MonitorUnavailable

INSTALL_HINT = ("install it with `sudo apt-get install prometheus` (Debian/Ubuntu: prometheus and promtool), "
                "or put both binaries from https://prometheus.io/download/ on PATH")
READY_TIMEOUT_SECONDS = 60.0
READY_POLL_SECONDS = 0.2
RETENTION = "1d"  # a run's data; the directory goes with the run directory


def binaries() -> tuple[str, str]:
    """(prometheus, promtool) from PATH, or MonitorUnavailable naming how to install them."""
    found = {tool: shutil.which(tool) for tool in ("prometheus", "promtool")}
    missing = [tool for tool, path in found.items() if path is None]
    if missing:
        raise MonitorUnavailable(f"--monitor needs Prometheus, and {' and '.join(missing)} is not installed: {INSTALL_HINT}")
    return found["prometheus"], found["promtool"]  # type: ignore[return-value]


def check_config(promtool: str, config: Path) -> None:
    out = subprocess.run([promtool, "check", "config", str(config)], capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        raise BackendError(f"promtool rejects the generated {config}: {(out.stdout + out.stderr).strip()}")


def free_port(host: str) -> int:
    """A port free now on ``host`` (the kernel's choice; Prometheus binds it a moment later)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def command(prometheus: str, config: Path, data: Path, listen: str) -> list[str]:
    return [prometheus, f"--config.file={config}", f"--storage.tsdb.path={data}", f"--web.listen-address={listen}",
            f"--storage.tsdb.retention.time={RETENTION}"]


def wait_ready(url: str, alive: Callable[[], bool], log: Path) -> None:
    """Until GET /-/ready answers 200; BackendError with the log's tail if the process exits or
    the timeout passes."""
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while True:
        try:
            with urllib.request.urlopen(f"{url}/-/ready", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-10:]) if log.exists() else ""
        if not alive():
            raise BackendError(f"prometheus exited during start-up; last lines of {log}:\n{tail}")
        if time.monotonic() > deadline:
            raise BackendError(f"prometheus not ready after {READY_TIMEOUT_SECONDS:.0f} s; last lines of {log}:\n{tail}")
        time.sleep(READY_POLL_SECONDS)  # polling the server's readiness endpoint
