"""wait_ready's probe: a member whose loop runs seconds behind is up, only late; a host process of
light nodes is asked once for all of them.

A real HTTP server on loopback answers GET /status after a fixed delay longer than the first
probe's timeout (and 404 to the /host/ routes, as a bitcoind's supervisor or the seeder does); the
readiness poll must accept it (it waits longer each round), and must still give up, naming the
member, on one that never answers. Two real hosts of light nodes beside it are asked GET
/host/ready, never each node's /status.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import pytest

from harness.backends import base
from harness.backends.base import READY_PROBE_TIMEOUT_SECONDS, Backend, BackendError
from harness.backends.client import HOST_PICKS
from harness.backends.endpoint import Endpoint
from harness_node.config import NodeConfig
from harness_node.host import Host

from tests.harness.counting_client import CountingClient
from tests.loopback import next_ip
from tests.node.conftest import LoopThread


@contextlib.contextmanager
def late_member(delay: float):
    paths: list[str] = []

    class Late(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 -- http.server's naming
            paths.append(self.path)
            if self.path.startswith("/host/"):
                self.send_error(404)
                return
            time.sleep(delay)
            body = b'{"id": "late"}'
            with contextlib.suppress(OSError):  # the client may have given up already
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        def log_message(self, *_args: object) -> None:
            pass

    ip = next_ip()
    server = ThreadingHTTPServer((ip, 0), Late)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Endpoint("node-late", ip, 18444, f"http://{ip}:{server.server_address[1]}"), paths
    finally:
        server.shutdown()
        server.server_close()


def poll(targets: list[Endpoint], timeout: float) -> float:
    backend = SimpleNamespace(raise_if_crashed=lambda: None, ready_poll_seconds=0.1, host_groups=lambda: [])
    started = time.monotonic()
    asyncio.run(Backend._poll_ready(backend, SimpleNamespace(control_token=None), targets, timeout))
    return time.monotonic() - started


def test_a_member_answering_later_than_the_first_probe_is_ready():
    delay = READY_PROBE_TIMEOUT_SECONDS * 1.5  # misses the first probe, within the second (2x)
    with late_member(delay) as (ep, paths):
        took = poll([ep], timeout=30)
    assert delay < took < 30
    assert [p for p in paths if not p.startswith("/host/")] == ["/status?peers=counts"] * 2, paths


def test_light_nodes_are_ready_when_their_host_says_so(monkeypatch):
    """Six light nodes in two real host processes' control sites and a member without /host/
    routes: all ready, in one round, each host asked GET /host/ready at most a few times and no
    light node asked on its own (10,000 such requests a round loaded the workers while they formed
    their graph); the other member is asked its /status alone."""
    lt = LoopThread()
    hosts = [Host(NodeConfig(name=f"h{k}n{i}", bind=next_ip(), port=0, control_port=0, seed=3 * k + i + 1)
                  for i in range(3)) for k in range(2)]
    clients: list[CountingClient] = []

    def counting(*args, **kwargs) -> CountingClient:
        clients.append(CountingClient(*args, **kwargs))
        return clients[-1]

    monkeypatch.setattr(base, "ControlClient", counting)
    try:
        for h in hosts:
            lt.run(h.start())
        light = [Endpoint(n, nd.config.bind, nd.port, f"http://{nd.control_address[0]}:{nd.control_address[1]}")
                 for h in hosts for n, nd in h.nodes.items()]
        with late_member(0) as (other, other_paths):
            poll([*light, other], timeout=30)
    finally:
        for h in hosts:
            lt.run(h.stop())
        lt.close()
    (client,) = clients
    assert client.paths["/status"] == 1 and other_paths[-1] == "/status?peers=counts", (client.paths, other_paths)
    # a round asks HOST_PICKS random endpoints for their host, none twice: two rounds place both
    # hosts and the other member at most
    assert 2 <= client.paths["/host/ready"] <= 2 * HOST_PICKS, client.paths
    assert set(client.paths) == {"/status", "/host/ready"}, client.paths

