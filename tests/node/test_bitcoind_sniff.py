"""The outside capture of a bitcoind member (harness_node/bitcoind/sniff.py).

Reassembly (`_Stream`) on segments built here: in order, retransmitted, out of order, a gap that
never fills, capture started mid-stream, a bad frame, sequence numbers wrapping. Then the `Sniffer`
on a real packet socket on loopback (root, in `unshare -n`; with CI=true a missing one fails) with
plain sockets standing in for bitcoind and its peers: its inbound and outbound connections are
recorded byte for byte in the right direction; another process's connection to the same peer, the
member's excluded ports and strangers' traffic are not.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from harness_node.bitcoind import sniff
from harness_node.bitcoind.sniff import SEQ_MOD, Sniffer, _Stream, available, bpf_filter
from harness_node.net.capture import MessageCapture, read_capture
from harness_node.wire.codec import frame
from tests.real import missing
from tests.waiting import wait_until

from conftest import next_ip

MAGIC = bytes.fromhex("dab5bffa")
F1, F2, F3 = frame(MAGIC, "ping", b"\x01" * 8), frame(MAGIC, "inv", b"\x02" * 37), frame(MAGIC, "tx", os.urandom(300))


def cmds(out: list[tuple[str, bytes]]) -> list[str]:
    return [c for c, _ in out]


def test_in_order_from_the_syn_and_split_anywhere() -> None:
    s = _Stream(MAGIC)
    s.syn(1000)
    data = F1 + F2 + F3
    out = []
    for i in range(0, len(data), 7):  # frames cut across segments at every offset
        out += s.segment(1001 + i, data[i:i + 7])
    assert out == [("ping", b"\x01" * 8), ("inv", b"\x02" * 37), ("tx", F3[24:])]


def test_retransmissions_are_cut_and_out_of_order_segments_wait() -> None:
    s = _Stream(MAGIC)
    s.syn(0)
    data = F1 + F2
    assert s.segment(1, data[:10]) == []
    assert s.segment(1, data[:20]) == []  # overlaps what came: only bytes 10..20 are new
    assert s.segment(31, data[30:]) == []  # beyond a gap: held
    assert s.segment(21, data[20:30]) == [("ping", b"\x01" * 8), ("inv", b"\x02" * 37)]
    assert s.segment(1, data) == []  # a whole retransmission adds nothing
    assert not s.pending and not s.buf


def test_a_gap_that_never_fills_resumes_at_the_next_frame(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sniff, "MAX_PENDING_BYTES", 50)
    s = _Stream(MAGIC)
    s.syn(0)
    lost = len(F1) + 5  # F1 and the start of F2 never arrive
    rest = (F2 + F3)[5:]
    out = []
    for i in range(0, len(rest), 40):
        out += s.segment(1 + lost + i, rest[i:i + 40])
    assert cmds(out) == ["tx"] and out[0][1] == F3[24:]


def test_capture_started_mid_stream_finds_the_next_frame() -> None:
    s = _Stream(MAGIC)
    data = F1 + F2 + F3
    # no SYN: the first segment seen starts inside F1's payload
    assert cmds(s.segment(7_000 + 30, data[30:60]) + s.segment(7_000 + 60, data[60:])) == ["inv", "tx"]


def test_a_bad_checksum_in_a_synced_stream_is_dropped_and_the_next_frame_kept() -> None:
    s = _Stream(MAGIC)
    s.syn(5)
    bad = bytearray(F2)
    bad[-1] ^= 0xFF
    assert cmds(s.segment(6, F1 + bytes(bad) + F3)) == ["ping", "tx"]


def test_sequence_numbers_wrap() -> None:
    s = _Stream(MAGIC)
    s.syn(SEQ_MOD - 10)
    data = F1 + F2
    assert s.segment(SEQ_MOD - 9, data[:9]) == []
    assert cmds(s.segment(0, data[9:])) == ["ping", "inv"]


def test_the_kernel_filter_is_a_valid_program() -> None:
    prog = bpf_filter(["127.3.0.1", "127.3.0.2"])
    assert len(prog) % 8 == 0 and len(prog) // 8 == 2 + 1 + 2 + 1 + 2 + 2
    with pytest.raises(ValueError):
        bpf_filter([])


# --- a real packet socket ---------------------------------------------------------------------------

# this process's own loopback addresses (conftest): parallel test runs do not collide
MEMBER, PEER, STRANGER, TEST_IP = next_ip(), next_ip(), next_ip(), next_ip()
PORT = 18444


def _listener(ip: str, port: int) -> socket.socket:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((ip, port))
    s.listen()
    return s


def _serve(listener: socket.socket, reply: bytes, got: list[bytes]) -> None:
    """Per connection: read what comes until the peer closes, answering ``reply`` to the first bytes."""
    def handle(conn: socket.socket) -> None:
        with conn:
            data, answered = b"", False
            try:
                while chunk := conn.recv(65536):
                    data += chunk
                    if not answered:
                        conn.sendall(reply)
                        answered = True
            except ConnectionResetError:
                pass  # a client that closed with our reply unread
            got.append(data)

    while True:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        threading.Thread(target=handle, args=(conn,), daemon=True).start()


def test_the_sniffer_records_the_members_connections_only(tmp_path: Path) -> None:
    if (why := available("lo")) is not None:
        missing("packet-socket", why)
    capture = MessageCapture(tmp_path / "cap", 1 << 20)
    big = frame(MAGIC, "block", os.urandom(200_000))  # many loopback segments
    listeners = [_listener(MEMBER, PORT), _listener(PEER, PORT), _listener(MEMBER, PORT + 1), _listener(STRANGER, PORT)]
    got: list[bytes] = []
    for listener, reply in zip(listeners, (F2, F3 + big, F2, F2)):
        threading.Thread(target=_serve, args=(listener, reply, got), daemon=True).start()
    sniffer = Sniffer(capture, "lo", (MEMBER, PORT), [(PEER, PORT)], os.getpid, MAGIC, excluded_ports=(PORT + 1,)).start()
    try:
        # inbound: a peer dials the member's P2P port
        inbound = socket.create_connection((MEMBER, PORT), source_address=(TEST_IP, 0))
        inbound.sendall(F1)
        peer_in = inbound.getsockname()
        assert inbound.recv(len(F2), socket.MSG_WAITALL) == F2
        # outbound: this process (the "bitcoind", pid) dials its -connect peer from the kernel's source
        outbound = socket.create_connection((PEER, PORT))
        outbound.sendall(F1 + F2)
        assert outbound.recv(len(F3) + len(big), socket.MSG_WAITALL) == F3 + big
        # another process dialling the same peer, the member's RPC port, a stranger: not the member's
        other = (f"import socket; s = socket.create_connection(({PEER!r}, {PORT})); s.sendall({F3!r}); "
                 f"s.recv(10); s.close()")
        subprocess.run([sys.executable, "-c", other], check=True, timeout=60)
        with socket.create_connection((MEMBER, PORT + 1), source_address=(TEST_IP, 0)) as c:
            c.sendall(F3)
            c.recv(10)
        inbound.close()
        outbound.close()
        wait_until(lambda: len(read_capture(tmp_path / "cap")) >= 6, 60.0, "six records", interval=0.1)
        time.sleep(1.0)  # anything wrongly recorded would be in by now
        found = read_capture(tmp_path / "cap")
        # strangers' traffic does not even reach the process: the kernel filter drops it
        packets = sniffer.packets
        with socket.create_connection((STRANGER, PORT), source_address=(TEST_IP, 0)) as c:
            c.sendall(F3)
            c.recv(10)
        time.sleep(1.0)
        assert sniffer.packets == packets
    finally:
        sniffer.stop()
        capture.close()
        for listener in listeners:
            listener.close()
    records = sorted((m.peer, m.direction, m.command, m.payload) for m in found)
    assert records == sorted([
        (f"{peer_in[0]}:{peer_in[1]}", "recv", "ping", F1[24:]),
        (f"{peer_in[0]}:{peer_in[1]}", "sent", "inv", F2[24:]),
        (f"{PEER}:{PORT}", "sent", "ping", F1[24:]),
        (f"{PEER}:{PORT}", "sent", "inv", F2[24:]),
        (f"{PEER}:{PORT}", "recv", "tx", F3[24:]),
        (f"{PEER}:{PORT}", "recv", "block", big[24:]),
    ])
