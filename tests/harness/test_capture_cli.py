"""`harness capture start|stop MEMBER` on a deployed local run, read back with `harness messages`
(docs/capture.md): real node-host processes on loopback, the test peer of tests/p2p_peer.py."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness.cli.app import app
from harness.plan.model import Plan
from harness.run import runner
from harness.run.rundir import RunDir
from harness_node.wire.messages import msg_ping
from tests.p2p_peer import BlockingPeer

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

SCENARIO = """\
name: capture-cli
seed: 5
duration: 5m
network:
  nodes: 3
  time_scale: 0.05
seeder:
  enabled: false
"""
NONCE = 0x0DDBA11CAFE


def cli(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.stdout


def test_capture_start_and_stop_a_running_member(tmp_path: Path) -> None:
    path = tmp_path / "capture.yaml"
    path.write_text(SCENARIO)
    run = RunDir(tmp_path / "run")
    runner.deploy(path, "local", run.path, wait=True)
    try:
        node = Plan.from_json(run.plan_file.read_text()).node("node-1")
        assert json.loads(cli("capture", "start", "node-1", "--run-dir", str(run.path), "--json"))["on"] is True
        peer = BlockingPeer(node.address, node.p2p_port, local_ip="127.1.0.200")
        try:
            peer.handshake()
            peer.send(msg_ping(NONCE))
            peer.ping_roundtrip()
        finally:
            peer.close()
        assert json.loads(cli("capture", "stop", "node-1", "--run-dir", str(run.path), "--json")) == {"on": False}
        pings = json.loads(cli("messages", "node-1", "--run-dir", str(run.path), "--peer", "127.1.0.200",
                               "--command", "ping", "--json"))
        assert struct.pack("<Q", NONCE).hex() in [m["payload"] for m in pings if m["direction"] == "recv"]
        text = cli("messages", "node-1", "--run-dir", str(run.path), "--peer", "127.1.0.200")
        assert "<- 127.1.0.200:" in text and "version" in text and "-> 127.1.0.200:" in text
    finally:
        runner.down(run.path)
    result = CliRunner().invoke(app, ["capture", "start", "node-1", "--run-dir", str(run.path)])
    assert result.exit_code != 0 and "nothing is running" in result.output
