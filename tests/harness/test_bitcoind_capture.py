"""Message capture of a real bitcoind member on the local backend (docs/capture.md): bitcoind has no
`-capturemessages`, so its supervisor reads its traffic off the loopback interface (a packet socket,
root) and writes the light node's capture files; `harness messages` reads them unchanged.

One run (four light nodes, one bitcoind, `network.capture: true`, a cap it never reaches):
- its handshakes with its planned light nodes, recorded from their SYN, match the light nodes' own
  captures of the same connections byte for byte, both ways;
- known messages from a peer of the test arrive as "recv" byte for byte, its answers as "sent";
- after `harness capture stop` and `start`, a connection already open is picked up mid-stream.
Another, with a 64 KiB cap: the 101 blocks its wallet is funded with during the deploy leave the
capture files at most the cap, the oldest dropped.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness.cli.app import app
from harness.plan.model import Plan
from harness.run import runner
from harness.run.rundir import RunDir
from harness_node.bitcoind.sniff import available
from harness_node.net.capture import CAPTURE_DIR
from harness_node.wire.messages import msg_ping
from tests.bitcoind import require_bitcoind
from tests.harness.bitcoind_faults import ANSWER_TIMEOUT_S, BSV_MAGIC, SCENARIO, wait_for
from tests.p2p_peer import BlockingPeer
from tests.real import missing

pytestmark = [pytest.mark.slow, pytest.mark.bitcoind, pytest.mark.timeout(400)]

CAP = 64 * 1024  # the run records ~4 kB before its blocks and ~170 kB with them
NO_CAP = 64 * 1024 * 1024  # the default: the 101 funding blocks (~170 kB, ~600 kB seen under load) fit
RELAY_TIMEOUT_S = 180.0  # 101 blocks mined and relayed to its light nodes, on a loaded machine
TEST_PEER_IP = "127.1.0.210"
NONCES = (0x0DDBA11CAFE, 0xFEEDFACE0001)


def cli(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.stdout


def messages(run: RunDir, member: str, *args: str) -> list[dict]:
    return json.loads(cli("messages", member, "--run-dir", str(run.path), "--json", *args))


def payloads(found: list[dict], direction: str) -> list[tuple[str, str]]:
    return [(m["command"], m["payload"]) for m in found if m["direction"] == direction]


def _deploy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cap: int) -> RunDir:
    """Four light nodes and bitcoind-0, everyone's capture on from the start (the bitcoind's from
    its packet socket); by the time the deploy returns the wallet is funded (101 blocks)."""
    monkeypatch.setenv("HARNESS_BITCOIND", str(require_bitcoind()))
    if (why := available("lo")) is not None:
        missing("packet-socket", why)
    scenario = tmp_path / "capture.yaml"
    scenario.write_text(SCENARIO.format(nodes=4) + f"  capture: true\n  capture_max_bytes: {cap}\n")
    run = RunDir(tmp_path / "run")
    runner.deploy(scenario, "local", run.path, wait=True)
    return run


def test_a_bitcoind_members_messages_are_captured_from_the_outside(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = _deploy(tmp_path, monkeypatch, NO_CAP)
    try:
        plan = Plan.from_json(run.plan_file.read_text())
        spec = plan.node("bitcoind-0")
        by_address = {n.address: n.name for n in plan.peers()}

        # 1. its handshakes with the planned light nodes, against the light nodes' own captures
        def handshakes() -> dict[str, list[dict]]:
            found = messages(run, "bitcoind-0")
            by_peer = {p: [m for m in found if m["peer"] == p] for p in spec.config["connect"]}
            done = all({"version", "verack"} <= {m["command"] for m in ms if m["direction"] == d}
                       for ms in by_peer.values() for d in ("sent", "recv"))
            return by_peer if done else {}

        by_peer = wait_for(handshakes, ANSWER_TIMEOUT_S, "bitcoind-0's handshakes with its light nodes captured")
        for peer, ours in by_peer.items():
            light = by_address[peer.rpartition(":")[0]]
            theirs = messages(run, light)
            # the light node names bitcoind by where its connection came from (bitcoind does not bind
            # its outgoing sockets): find that peer by the version bitcoind sent
            version = next(p for c, p in payloads(ours, "sent") if c == "version")
            (remote,) = {m["peer"] for m in theirs if m["direction"] == "recv" and m["payload"] == version}
            mine = [m for m in theirs if m["peer"] == remote]
            for ours_dir, theirs_dir in (("sent", "recv"), ("recv", "sent")):
                a, b = payloads(ours, ours_dir), payloads(mine, theirs_dir)
                n = min(len(a), len(b))
                assert n >= 2 and a[:n] == b[:n], (peer, ours_dir, a[:3], b[:3])

        # 2. known messages from a peer of the test, and bitcoind's answers
        peer = BlockingPeer(spec.address, spec.p2p_port, local_ip=TEST_PEER_IP, magic=BSV_MAGIC)
        received: list[tuple[str, str]] = []  # every frame bitcoind sent the test peer, raw
        peer.peer.on_frame = lambda command, payload, msg: received.append((command, payload.hex()))  # type: ignore[method-assign]
        try:
            version = peer.version_msg()
            peer.send(version)
            theirs = peer.expect("version")
            peer.expect("verack")
            peer.send_frame("verack", b"")
            peer.send(msg_ping(NONCES[0]))
            peer.expect("pong", 10.0, where=lambda m: m.nonce == NONCES[0])

            def seen(direction: str, command: str, payload: str) -> bool:
                return (command, payload) in payloads(messages(run, "bitcoind-0", "--peer", TEST_PEER_IP), direction)

            nonce0 = struct.pack("<Q", NONCES[0]).hex()
            wait_for(lambda: seen("sent", "pong", nonce0), ANSWER_TIMEOUT_S, "the pong captured")
            found = messages(run, "bitcoind-0", "--peer", TEST_PEER_IP)
            assert payloads(found, "recv")[:3] == [("version", version.serialize().hex()), ("verack", ""),
                                                   ("ping", nonce0)]
            sent = payloads(found, "sent")
            n = min(len(sent), len(received))
            assert n >= 3 and sent[:n] == received[:n] and ("pong", nonce0) in sent
            assert sent[0][0] == "version" and theirs.nonce == struct.unpack_from("<Q", bytes.fromhex(sent[0][1]), 72)[0]
            assert {m["direction"] for m in found} == {"recv", "sent"}
            assert all(m["peer"].startswith(f"{TEST_PEER_IP}:") for m in found)
            # nothing but its own P2P connections: not the light nodes' among themselves, not its RPC
            peers = {m["peer"] for m in messages(run, "bitcoind-0")}
            assert {p for p in peers if not p.startswith(f"{TEST_PEER_IP}:")} == set(spec.config["connect"])

            # 3. stopped, then started on a connection already open: found again mid-stream
            assert json.loads(cli("capture", "stop", "bitcoind-0", "--run-dir", str(run.path), "--json")) == {"on": False}
            assert json.loads(cli("capture", "start", "bitcoind-0", "--run-dir", str(run.path), "--json"))["on"] is True
            peer.send(msg_ping(NONCES[1]))
            peer.expect("pong", 10.0, where=lambda m: m.nonce == NONCES[1])
            nonce1 = struct.pack("<Q", NONCES[1]).hex()
            wait_for(lambda: seen("recv", "ping", nonce1) and seen("sent", "pong", nonce1), ANSWER_TIMEOUT_S,
                     "ping and pong of an open connection captured after a restart of the capture")
        finally:
            peer.close()
    finally:
        runner.down(run.path)


def test_a_bitcoind_members_capture_keeps_to_its_cap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = _deploy(tmp_path, monkeypatch, CAP)  # the funding: 101 blocks, each sent to each of its 4 light nodes
    try:
        root = run.datadir("bitcoind-0") / CAPTURE_DIR

        def state() -> dict:  # `start` of a running capture changes nothing and answers its state
            return json.loads(cli("capture", "start", "bitcoind-0", "--run-dir", str(run.path), "--json"))

        info = wait_for(lambda: (s := state())["dropped_bytes"] > 0 and s, RELAY_TIMEOUT_S, "the cap to drop segments")
        assert info["bytes"] <= CAP
        on_disk = sum(os.path.getsize(p) for p in root.rglob("msgs_*.dat"))
        assert on_disk <= CAP
        # the newest survive, decoded: the burst's blocks, or the headers announcing them (under load a
        # light node asks getheaders for each block that arrives before its parent, and 101-header
        # answers, 8 kB each, can be all of the last 64 KiB: a run beside another suite held 70 getheaders and
        # no block)
        newest = {m["command"] for m in messages(run, "bitcoind-0")}
        assert newest & {"block", "headers"}, newest
    finally:
        runner.down(run.path)


def test_docker_refuses_capture_of_bitcoind_members_before_anything_starts(tmp_path: Path) -> None:
    """The packet socket reads the local backend's loopback; in a container the supervisor could not
    write where `harness messages` reads. Refused (exit 2) naming the field, nothing started."""
    binary = require_bitcoind()
    scenario = tmp_path / "capture.yaml"
    scenario.write_text(SCENARIO.format(nodes=4) + "  capture: true\n")
    result = CliRunner().invoke(app, ["deploy", str(scenario), "--backend", "docker", "--run-dir", str(tmp_path / "run"),
                                      "--bitcoind", str(binary)])
    assert result.exit_code == 2, result.output
    assert "network.capture" in result.output and "local backend" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "run" / "state.json").exists()


def test_local_deploy_without_a_packet_socket_is_refused_before_anything_starts(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without CAP_NET_RAW the supervisor could not capture. The tests run as root, where the packet
    socket opens, so the missing permission is simulated (the one mock here): `available` answers
    what it answers for a user without CAP_NET_RAW."""
    from harness.backends.local import bitcoind as local_btc

    binary = require_bitcoind()
    monkeypatch.setattr(local_btc, "available", lambda interface: "opening a packet socket needs CAP_NET_RAW "
                                                                  "(run the harness as root)")
    scenario = tmp_path / "capture.yaml"
    scenario.write_text(SCENARIO.format(nodes=4) + "  capture: true\n")
    result = CliRunner().invoke(app, ["deploy", str(scenario), "--run-dir", str(tmp_path / "run"), "--bitcoind", str(binary)])
    assert result.exit_code == 2, result.output
    assert "network.capture" in result.output and "CAP_NET_RAW" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "run" / "state.json").exists()
