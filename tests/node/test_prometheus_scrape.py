"""A real Prometheus server scrapes a node's /metrics, and promtool accepts the exposition."""

from __future__ import annotations

import json
import socket
import subprocess
import urllib.parse
import urllib.request

import pytest

from harness_node.api.control import ControlServer
from harness_node.api.metrics import exposition

from conftest import wait_until
from tests.real import require


def free_port(ip: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((ip, 0))
        return s.getsockname()[1]


def test_promtool_accepts_the_exposition(lt, make_node):
    promtool = require("promtool")
    node = make_node()
    text = lt.eval(lambda: exposition(node))
    out = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, timeout=30)
    # promtool exits 0 when only lint hints are printed; non-zero means invalid exposition
    assert out.returncode == 0, out.stdout.decode() + out.stderr.decode()


def test_a_real_prometheus_scrapes_peers_and_propagation(lt, make_node, tmp_path):
    prometheus = require("prometheus")
    a = make_node()
    b = make_node(connect=[f"{a.config.bind}:{a.port}"])
    lt.wait(lambda: any(p.verack_received for p in b.peers.values()), what="b connected to a")
    ctl = ControlServer()
    ip, port = lt.run(ctl.add(a))
    lt.eval(a.inject_tx)
    lt.wait(lambda: len(b.mempool) == 1, what="tx reached b")
    web_port = free_port()
    cfg = tmp_path / "prometheus.yml"
    cfg.write_text(json.dumps({  # JSON is YAML
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
        "scrape_configs": [{"job_name": "nodes", "static_configs": [{"targets": [f"{ip}:{port}"]}]}],
    }))
    proc = subprocess.Popen([prometheus, f"--config.file={cfg}", f"--storage.tsdb.path={tmp_path / 'data'}",
                             f"--web.listen-address=127.0.0.1:{web_port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def query(q: str) -> list:
            url = f"http://127.0.0.1:{web_port}/api/v1/query?" + urllib.parse.urlencode({"query": q})
            try:
                with urllib.request.urlopen(url, timeout=2) as r:
                    return json.load(r)["data"]["result"]
            except OSError:
                return []

        peers = wait_until(lambda: query('harness_node_peers{direction="inbound"}'), timeout=60,
                           what="prometheus to scrape the node")
        assert peers[0]["metric"]["node"] == a.name
        assert float(peers[0]["value"][1]) == 1
        sent = wait_until(lambda: query('harness_node_messages_total{direction="out",command="tx"}'), timeout=30,
                          what="tx message counter")
        assert float(sent[0]["value"][1]) >= 1
    finally:
        proc.terminate()
        proc.wait(10)
        lt.run(ctl.stop())
