"""Seeder DNS throughput: A queries per second over UDP from one client, one query in flight.

    python bench/bench_seeder.py [--seconds 3] [--nodes 500]

The seeder runs in-process on a background thread (its own event loop) serving `--nodes` static
good nodes in honest mode; the client is a plain blocking UDP socket, so the number measures the
server's parse/select/pack path plus one loopback round trip. Run once; do not loop it on CI.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import time

import dns.message

from harness_node.seeder import SeederConfig
from harness_node.seeder.service import SeederThread

DNS_IP = "127.53.250.1"


def run(seconds: float, nodes: int) -> dict[str, float]:
    static = [f"127.80.{i // 250}.{i % 250 + 1}" for i in range(nodes)]
    cfg = SeederConfig(dns_host=DNS_IP, dns_port=0, control_port=0, crawl=False, static_nodes=static)
    thread = SeederThread(cfg)
    seeder = thread.start()
    query = dns.message.make_query("x9.seed.testnet.", "A")
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(2.0)
            s.connect((DNS_IP, seeder.dns.port))
            latencies: list[float] = []
            sizes: list[int] = []
            qid = 0
            deadline = time.perf_counter() + seconds
            while time.perf_counter() < deadline:
                qid = (qid + 1) & 0xFFFF
                query.id = qid
                t0 = time.perf_counter()
                s.send(query.to_wire())
                reply = s.recv(4096)
                latencies.append(time.perf_counter() - t0)
                sizes.append(len(reply))
    finally:
        thread.stop()
    total = sum(latencies)
    return {"queries": len(latencies), "qps": len(latencies) / total, "p50_ms": statistics.median(latencies) * 1e3,
            "p99_ms": sorted(latencies)[int(0.99 * len(latencies))] * 1e3, "max_reply_bytes": max(sizes)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--nodes", type=int, default=500)
    args = p.parse_args()
    r = run(args.seconds, args.nodes)
    print(f"seeder UDP: {r['queries']} queries, {r['qps']:.0f} q/s, p50 {r['p50_ms']:.3f} ms, "
          f"p99 {r['p99_ms']:.3f} ms, largest reply {r['max_reply_bytes']} bytes")


if __name__ == "__main__":
    main()
