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


def test_the_report_links_the_captures_of_a_failed_checks_victims(tmp_path: Path) -> None:
    """3 nodes with capture on cannot have 8 outbound peers each: all_connected fails, and
    report.json names each victim's capture directory."""
    path = tmp_path / "failing.yaml"
    path.write_text(SCENARIO.replace("  time_scale: 0.05\n", "  time_scale: 0.05\n  capture: true\n")
                    + "expect:\n  - check: all_connected\n    min_outbound: 8\n")
    run = RunDir(tmp_path / "run")
    runner.deploy(path, "local", run.path, wait=True)
    try:
        plan = Plan.from_json(run.plan_file.read_text())
        for name in plan.names():  # seeder off: the test peer gives every node something to capture
            peer = BlockingPeer(plan.node(name).address, plan.node(name).p2p_port, local_ip="127.1.0.201")
            try:
                peer.handshake()
            finally:
                peer.close()
        rep, _ = runner.report(run.path, tmp_path / "report")
    finally:
        runner.down(run.path)
    assert [c.verdict.value for c in rep.checks if c.name == "all_connected"] == ["fail"]
    links = json.loads((tmp_path / "report" / "report.json").read_text())["captures"]
    assert links == {"all_connected": {f"node-{i}": f"data/node-{i}/message_capture" for i in range(3)}}
    for directory in links["all_connected"].values():
        assert any((run.path / directory).rglob("msgs_*.dat"))
