"""A real Prometheus server for tests: Debian's `prometheus` binary, file-based service discovery on
a temporary directory (targets are added while it runs, as `harness deploy` will do), a 1 s scrape
interval, and the HTTP API on a free loopback port.

Missing prometheus/promtool skips the test, or fails it when CI=true (a real part must run in CI).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

SCRAPE_INTERVAL = "2s"  # a 2-core machine shared with other test runs: 1 s scrapes time out


def require(tool: str) -> str:
    """The tool's path; skip without it, or fail under CI=true."""
    path = shutil.which(tool)
    if path is None:
        message = f"{tool} not installed (apt-get install prometheus)"
        if os.environ.get("CI") == "true":
            pytest.fail(message + " and CI=true: the real part must run")
        pytest.skip(message)
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PrometheusServer:
    def __init__(self, workdir: Path) -> None:
        self.binary = require("prometheus")
        self.workdir = workdir
        self.sd_dir = workdir / "targets"
        self.sd_dir.mkdir(parents=True)
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config = workdir / "prometheus.yml"
        jobs = ("harness-node", "harness-seeder", "harness-controller", "harness-attacker")
        self.config.write_text(json.dumps({  # JSON is YAML
            "global": {"scrape_interval": SCRAPE_INTERVAL, "scrape_timeout": SCRAPE_INTERVAL,
                       "evaluation_interval": SCRAPE_INTERVAL},
            "scrape_configs": [{"job_name": job, "file_sd_configs": [
                {"files": [str(self.sd_dir / f"{job}.json")], "refresh_interval": "1s"}]} for job in jobs],
        }, indent=1))
        self.proc: subprocess.Popen[bytes] | None = None

    def check_config(self) -> subprocess.CompletedProcess[str]:
        return subprocess.run([require("promtool"), "check", "config", str(self.config)],
                              capture_output=True, text=True, timeout=60)

    def start(self) -> None:
        log = (self.workdir / "prometheus.log").open("wb")
        self.proc = subprocess.Popen(
            [self.binary, f"--config.file={self.config}", f"--storage.tsdb.path={self.workdir / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--storage.tsdb.retention.time=1h"],
            stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while not self._ready():
            if self.proc.poll() is not None:
                raise RuntimeError(f"prometheus exited {self.proc.returncode}: {self.log_tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"prometheus not ready after 60 s: {self.log_tail()}")
            time.sleep(0.2)

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    def log_tail(self) -> str:
        return (self.workdir / "prometheus.log").read_text(errors="replace")[-2000:]

    def set_targets(self, job: str, targets: list[str], labels: dict[str, str] | None = None) -> None:
        """Write the job's discovery file atomically (Prometheus may read it at any moment)."""
        tmp = self.sd_dir / f".{job}.json.tmp"
        tmp.write_text(json.dumps([{"targets": targets, "labels": labels or {}}]))
        tmp.replace(self.sd_dir / f"{job}.json")

    def api(self, path: str, **params: str) -> Any:
        with urllib.request.urlopen(f"{self.url}{path}?{urllib.parse.urlencode(params)}", timeout=10) as r:
            return json.load(r)["data"]

    def query(self, expr: str) -> list[Any]:
        return self.api("/api/v1/query", query=expr)["result"]

    def active_targets(self) -> list[dict[str, Any]]:
        return self.api("/api/v1/targets")["activeTargets"]

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    server = PrometheusServer(tmp_path_factory.mktemp("prometheus"))
    checked = server.check_config()
    assert checked.returncode == 0, checked.stdout + checked.stderr
    server.start()
    try:
        yield server
    finally:
        server.stop()
