"""`--token-file`: the control token read from a file (a mounted Kubernetes Secret), never from the
config; real `harness-node host` and `harness-node seeder` processes on loopback."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from harness_node.tokenfile import read_token_file

from conftest import next_ip, wait_until

TOKEN = "file-token-0123456789"


def free_port(ip: str) -> int:
    with socket.socket() as s:
        s.bind((ip, 0))
        return s.getsockname()[1]


def post(url: str, body: Any, token: str | None) -> int:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except OSError:
        return False


def start(args: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "harness_node.cli", *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    proc.wait(timeout=15)


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "token"
    path.write_text(TOKEN + "\n")  # a Secret's value often ends with a newline
    path.chmod(0o600)
    return path


def test_host_nodes_take_the_token_from_the_file(tmp_path: Path, token_file: Path) -> None:
    ip = next_ip()
    port = free_port(ip)
    config = tmp_path / "pod.json"
    # The config carries another token: the file wins, as for a pod whose config is in a ConfigMap.
    config.write_text(json.dumps({"nodes": [{"name": "n0", "bind": ip, "port": 0, "control_port": port,
                                             "control_token": "from-the-config"}]}))
    proc = start(["host", "--config", str(config), "--token-file", str(token_file)])
    try:
        wait_until(lambda: proc.poll() is not None or answers(f"http://{ip}:{port}/status"), what="node up")
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        assert post(f"http://{ip}:{port}/tx", {"synthetic": True}, None) == 401
        assert post(f"http://{ip}:{port}/tx", {"synthetic": True}, "from-the-config") == 401
        assert post(f"http://{ip}:{port}/tx", {"synthetic": True}, TOKEN) == 200
    finally:
        stop(proc)


def test_seeder_takes_the_token_from_the_file(tmp_path: Path, token_file: Path) -> None:
    ip = next_ip()
    control, dns = free_port(ip), free_port(ip)
    config = tmp_path / "seeder.json"
    config.write_text(json.dumps({"dns_host": ip, "dns_port": dns, "control_host": ip, "control_port": control,
                                  "crawl": False}))
    proc = start(["seeder", "--config", str(config), "--token-file", str(token_file)])
    try:
        wait_until(lambda: proc.poll() is not None or answers(f"http://{ip}:{control}/status"), what="seeder up")
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        assert post(f"http://{ip}:{control}/mode", {"mode": "honest"}, None) == 401
        assert post(f"http://{ip}:{control}/mode", {"mode": "honest"}, TOKEN) == 200
    finally:
        stop(proc)


def test_an_unreadable_or_empty_token_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="missing.*No such file"):
        read_token_file(tmp_path / "missing")
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(ValueError, match="empty"):
        read_token_file(empty)
    config = tmp_path / "pod.json"
    config.write_text(json.dumps({"nodes": [{"name": "n0", "bind": next_ip(), "port": 0}]}))
    done = subprocess.run([sys.executable, "-m", "harness_node.cli", "host", "--config", str(config),
                           "--token-file", str(empty)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip() == f"harness-node: error: --token-file {empty}: the file is empty"
