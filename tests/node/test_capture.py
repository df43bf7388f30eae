"""Message capture (docs/capture.md): a real node on loopback records what a test peer sends and
what it answers, in Core's -capturemessages layout; `harness messages` reads it back byte for byte;
the per-member cap holds with the oldest segments dropped; POST /capture switches it at run time."""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

from typer.testing import CliRunner

from harness.cli.app import app
from harness_node.config import NodeConfig
from harness_node.host import Host
from harness_node.net.capture import CAPTURE_DIR, peer_dirname, read_capture
from harness_node.wire.codec import NetAddr
from harness_node.wire.messages import CInv, msg_addr, msg_inv, msg_ping
from harness_node.wire.synthetic import make_tx

from conftest import TestPeer, next_ip
from test_control import TOKEN, call



def run_layout(tmp_path: Path, member: str) -> tuple[Path, Path]:
    """A run directory as the local backend lays it out: the node's datadir is <run>/data/<member>."""
    run = tmp_path / "run"
    datadir = run / "data" / member
    datadir.mkdir(parents=True)
    return run, datadir


def harness_messages(run: Path, member: str, *args: str) -> list[dict]:
    result = CliRunner().invoke(app, ["messages", member, "--run-dir", str(run), "--json", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_known_messages_are_captured_and_read_back_byte_for_byte(lt, make_node, tmp_path):
    run, datadir = run_layout(tmp_path, "cap0")
    node = make_node(name="cap0", datadir=str(datadir), capture=True)
    peer = TestPeer(node)
    try:
        peer.handshake()
        sent = [
            msg_ping(0x1122334455667788),
            msg_inv([CInv(1, bytes(range(32)))]),
            msg_addr([NetAddr("127.7.7.7", 18444, 1, 1_700_000_000)]),
            make_tx(b"capture-test-0001"[:16]),
        ]
        for msg in sent[:3]:
            peer.send(msg)
        peer.send_frame("tx", sent[3].raw)
        peer.send_frame("harnessx", b"\x01\x02\x03")  # unknown command: recorded as it came
        peer.ping_roundtrip()
    finally:
        peer.close()

    recv = harness_messages(run, "cap0", "--command", "ping")
    assert sent[0].serialize() in [bytes.fromhex(m["payload"]) for m in recv if m["direction"] == "recv"]
    assert {m["command"] for m in recv} == {"ping"}
    everything = harness_messages(run, "cap0")
    received = [(m["command"], bytes.fromhex(m["payload"])) for m in everything if m["direction"] == "recv"]
    for msg in sent[1:3]:
        assert (msg.command, msg.serialize()) in received
    assert ("tx", sent[3].raw) in received
    assert ("harnessx", b"\x01\x02\x03") in received
    # the node's own answers are captured too: version, verack, pong to our nonce
    sent_by_node = [m for m in everything if m["direction"] == "sent"]
    assert {"version", "verack", "pong"} <= {m["command"] for m in sent_by_node}
    pong = next(m for m in sent_by_node if m["command"] == "pong")
    assert "nonce" in pong["decoded"] and pong["size"] == 8
    # one directory per peer, named as Core names it, holding msgs_recv.dat and msgs_sent.dat
    peer_dirs = list((datadir / CAPTURE_DIR).iterdir())
    assert len(peer_dirs) == 1 and peer_dirs[0].name.startswith(peer_dirname(peer.ip + ":"))
    assert sorted(p.name for p in peer_dirs[0].iterdir()) == ["msgs_recv.dat", "msgs_sent.dat"]
    assert {m["peer"] for m in everything} == {peer_dirs[0].name.replace("_", ":")}
    assert harness_messages(run, "cap0", "--peer", peer.ip) == everything
    assert harness_messages(run, "cap0", "--peer", everything[0]["peer"]) == everything
    assert harness_messages(run, "cap0", "--peer", "127.0.0.9") == []


def test_the_record_layout_is_cores(lt, make_node, tmp_path):
    """Parsed here by hand with Core's field sizes (u64 LE µs, 12-byte NUL-padded command, u32 LE)."""
    node = make_node(datadir=str(tmp_path), capture=True)
    peer = TestPeer(node)
    try:
        peer.handshake()
        peer.send(msg_ping(42))
        peer.ping_roundtrip()
    finally:
        peer.close()
    (peer_dir,) = (tmp_path / CAPTURE_DIR).iterdir()
    data = (peer_dir / "msgs_recv.dat").read_bytes()
    time_us, command, length = struct.unpack_from("<Q12sI", data, 0)
    assert command == b"version" + b"\0" * 5
    assert abs(time_us / 1e6 - os.path.getmtime(peer_dir / "msgs_recv.dat")) < 60
    offset, commands = 0, []
    while offset < len(data):
        _, command, length = struct.unpack_from("<Q12sI", data, offset)
        commands.append(command.rstrip(b"\0"))
        if command.rstrip(b"\0") == b"ping" and len(commands) > 2:
            assert data[offset + 24:offset + 24 + length] in (struct.pack("<Q", 42), data[offset + 24:offset + 32])
        offset += 24 + length
    assert offset == len(data) and commands[:2] == [b"version", b"verack"] and b"ping" in commands


def test_the_size_cap_holds_and_the_oldest_go_first(lt, make_node, tmp_path):
    cap = 4096
    node = make_node(datadir=str(tmp_path), capture=True, capture_max_bytes=cap)
    peer = TestPeer(node)
    try:
        peer.handshake()
        for nonce in range(1, 401):  # 400 pings in, 400 pongs out: ~25 kB of records
            peer.send(msg_ping(nonce))
        peer.ping_roundtrip()
    finally:
        peer.close()
    root = tmp_path / CAPTURE_DIR
    on_disk = sum(p.stat().st_size for p in root.rglob("*.dat"))
    assert on_disk <= cap
    info = lt.eval(node.capture_info)
    assert info["bytes"] == on_disk and info["dropped_bytes"] > 0
    pings = [struct.unpack("<Q", m.payload)[0] for m in read_capture(root)
             if m.command == "ping" and m.direction == "recv"]
    # the newest survive, contiguous up to the last; the oldest (and the handshake) are gone
    assert pings and pings[-1] >= 400 - 1 and 1 not in pings
    assert not any(m.command == "version" for m in read_capture(root))


def test_capture_switches_at_run_time_through_the_control_api(lt, tmp_path):
    config = NodeConfig(name="rt0", bind=next_ip(), port=0, control_port=0, control_token=TOKEN,
                        datadir=str(tmp_path))
    host = Host([config])
    lt.run(host.start())
    try:
        node = host.nodes["rt0"]
        addr = node.control_address
        assert call(addr, "POST", "/capture", {"on": True}, token=None)[0] == 401
        assert call(addr, "POST", "/capture", {"on": "yes"})[0] == 400
        assert call(addr, "GET", "/capture")[1] == {"on": False}
        peer = TestPeer(node)
        try:
            peer.handshake()
            peer.send(msg_ping(1))  # before: not recorded
            peer.ping_roundtrip()
            status, body = call(addr, "POST", "/capture", {"on": True})
            assert status == 200 and body["on"] is True
            peer.send(msg_ping(2))
            peer.ping_roundtrip()
            assert call(addr, "POST", "/capture", {"on": False})[1] == {"on": False}
            peer.send(msg_ping(3))  # after: not recorded
            peer.ping_roundtrip()
        finally:
            peer.close()
        nonces = {struct.unpack("<Q", m.payload)[0] for m in read_capture(tmp_path / CAPTURE_DIR)
                  if m.command == "ping" and m.direction == "recv"}
        assert 2 in nonces and 1 not in nonces and 3 not in nonces
    finally:
        lt.run(host.stop())


def test_capture_without_a_datadir_is_refused(lt, tmp_path):
    host = Host([NodeConfig(name="nd0", bind=next_ip(), port=0, control_port=0, control_token=TOKEN)])
    lt.run(host.start())
    try:
        status, body = call(host.nodes["nd0"].control_address, "POST", "/capture", {"on": True})
        assert status == 409 and "data directory" in body["error"]
    finally:
        lt.run(host.stop())


def test_harness_messages_names_a_member_without_captures(tmp_path):
    run, _ = run_layout(tmp_path, "quiet")
    result = CliRunner().invoke(app, ["messages", "quiet", "--run-dir", str(run)])
    assert result.exit_code == 2 and "no captures" in result.output
    result = CliRunner().invoke(app, ["messages", "ghost", "--run-dir", str(run)])
    assert result.exit_code == 2 and "ghost" in result.output


def test_the_cap_holds_on_disk_at_every_write(tmp_path, monkeypatch):
    """Room is made before a record is written, so a reader summing the files at any moment (the
    bitcoind test, `du`) never sees more than the cap, not only after each record."""
    import os

    from harness_node.net import capture as capture_module

    cap = 4096
    root = tmp_path / CAPTURE_DIR
    seen = []
    real_write = os.write

    def checked_write(fd: int, data: bytes) -> int:
        seen.append(sum(p.stat().st_size for p in root.rglob("msgs_*.dat")) + len(data))
        return real_write(fd, data)

    monkeypatch.setattr(capture_module.os, "write", checked_write)
    writer = capture_module.MessageCapture(root, cap)
    for i in range(200):
        writer.record(f"127.0.0.{1 + i % 3}:18444", "recv" if i % 2 else "sent", "ping", struct.pack("<Q", i) * 4)
    writer.close()
    assert len(seen) == 200 and max(seen) <= cap and writer.dropped_bytes > 0
