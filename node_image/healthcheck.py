"""The image's HEALTHCHECK: healthy when every control API the container's config names answers
GET /status with 200 (a node alone, a host of many nodes, an attacker process, or the seeder); exit 0 healthy, 1 not.

It runs every 30 s in every container, so it must be cheap: `python3 -S` (no site packages) and
only socket, json and glob, no urllib (a hundred containers checking with urllib kept two cores
busy with interpreter start-ups alone; bench/bench_docker.py)."""

import glob
import json
import socket
import sys

TIMEOUT_SECONDS = 3


def control_endpoints(config):
    if "nodes" in config:  # harness-node host
        return [(n.get("control_bind") or n.get("bind"), n["control_port"]) for n in config["nodes"] if n.get("control_port")]
    if "attackers" in config:  # harness-node attack: one control API per identity
        return [(a.get("control_bind") or a.get("bind") or a["address"], a["control_port"])
                for a in config["attackers"] if a.get("control_port")]
    if "dns_port" in config or "control_host" in config:  # the seeder
        return [(config.get("control_host") or config.get("dns_host"), config.get("control_port", 8053))]
    if config.get("control_port"):
        # a bitcoind member's supervisor serves on its `address`
        return [(config.get("control_bind") or config.get("bind") or config.get("address", "127.0.0.1"), config["control_port"])]
    return []


def answers(host, port):
    try:
        with socket.create_connection((host, port), timeout=TIMEOUT_SECONDS) as s:
            s.sendall(f"GET /status HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
            return _status_ok(s)
    except OSError:
        return False


def _status_ok(s):
    head = b""
    while len(head) < 12:
        chunk = s.recv(12 - len(head))
        if not chunk:
            break
        head += chunk
    return head[9:12] == b"200"


def main():
    endpoints = []
    for path in glob.glob("/etc/harness-node/*.json"):
        with open(path) as f:
            endpoints += control_endpoints(json.load(f))
    return 0 if endpoints and all(answers(h, p) for h, p in endpoints) else 1


if __name__ == "__main__":
    sys.exit(main())
