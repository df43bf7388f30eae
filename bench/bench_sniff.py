"""Outside capture of a bitcoind member (harness_node/bitcoind/sniff.py): messages per second it
records, and the CPU it takes, for one loopback connection carrying small frames.

    unshare -n sh -c 'ip link set lo up && python bench/bench_sniff.py [--messages 50000] [--size 200]'

Needs root (a packet socket). A plain socket server stands in for bitcoind; the client sends
`--messages` frames of `--size` payload bytes in 64 KiB send calls, or one per call
(`--per-packet`, TCP_NODELAY: about one packet per message, as P2P traffic is); the number is the time until the last one
is in the capture files, and the sniffer thread's CPU time over it (from /proc). Run once; do not
loop it on CI. A second connection between two other addresses carries the same load to show what
the kernel filter costs when the traffic is not the member's (it never reaches the process).
"""

from __future__ import annotations

import argparse
import os
import socket
import tempfile
import threading
import time
from pathlib import Path

from harness_node.bitcoind.sniff import Sniffer, available
from harness_node.net.capture import MessageCapture
from harness_node.wire.codec import frame

MAGIC = bytes.fromhex("dab5bffa")
MEMBER, OTHER, CLIENT = ("127.31.0.1", 18444), ("127.31.0.2", 18444), "127.31.0.9"


def _sink(addr: tuple[str, int]) -> socket.socket:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(addr)
    s.listen()

    def drain() -> None:
        conn, _ = s.accept()
        with conn:
            while conn.recv(1 << 20):
                pass

    threading.Thread(target=drain, daemon=True).start()
    return s


def _thread_cpu(native_id: int) -> float:
    fields = Path(f"/proc/self/task/{native_id}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def send(addr: tuple[str, int], data: bytes, chunk: int) -> None:
    """``chunk``: bytes per send call (one frame's size: about a packet per message, as P2P traffic is)."""
    with socket.create_connection(addr, source_address=(CLIENT, 0)) as c:
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i in range(0, len(data), chunk):
            c.sendall(data[i:i + chunk])


def run(messages: int, size: int, per_packet: bool) -> dict[str, float]:
    why = available("lo")
    if why:
        raise SystemExit(f"bench_sniff: {why}")
    data = b"".join(frame(MAGIC, "tx", os.urandom(size)) for _ in range(messages))
    chunk = size + 24 if per_packet else 1 << 16
    with tempfile.TemporaryDirectory() as tmp:
        capture = MessageCapture(Path(tmp), 1 << 40)
        sinks = [_sink(MEMBER), _sink(OTHER)]
        sniffer = Sniffer(capture, "lo", MEMBER, [], lambda: None, MAGIC).start()
        tid = sniffer._thread.native_id
        assert tid is not None
        try:
            cpu0 = _thread_cpu(tid)
            send(OTHER, data, chunk)  # not the member's: dropped by the kernel filter
            time.sleep(1.0)
            other_cpu = _thread_cpu(tid) - cpu0
            other_packets = sniffer.packets
            cpu0, started = _thread_cpu(tid), time.perf_counter()
            send(MEMBER, data, chunk)
            while capture.records < messages:
                time.sleep(0.01)
            seconds = time.perf_counter() - started
            cpu = _thread_cpu(tid) - cpu0
        finally:
            sniffer.stop()
            capture.close()
            for s in sinks:
                s.close()
    return {"messages": messages, "payload_bytes": size, "seconds": seconds, "messages_per_s": messages / seconds,
            "sniffer_cpu_s": cpu, "cpu_us_per_message": 1e6 * cpu / messages, "packets": sniffer.packets,
            "other_traffic_packets_seen": other_packets, "other_traffic_cpu_s": other_cpu}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--messages", type=int, default=50_000)
    p.add_argument("--size", type=int, default=200)
    p.add_argument("--per-packet", action="store_true", help="one send call per frame (else 64 KiB per call)")
    args = p.parse_args()
    for key, value in run(args.messages, args.size, args.per_packet).items():
        print(f"{key:>28}: {value:,.3f}" if isinstance(value, float) else f"{key:>28}: {value:,}")


if __name__ == "__main__":
    main()
