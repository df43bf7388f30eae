"""wait_ready's probe: a member whose loop runs seconds behind is up, only late.

A real HTTP server on loopback answers GET /status after a fixed delay longer than the first
probe's timeout; the readiness poll must accept it (it waits longer each round), and must still
give up, naming the member, on one that never answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import pytest

from harness.backends.base import READY_PROBE_TIMEOUT_SECONDS, Backend, BackendError
from harness.backends.endpoint import Endpoint

from tests.loopback import next_ip


@contextlib.contextmanager
def late_member(delay: float):
    paths: list[str] = []

    class Late(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 -- http.server's naming
            paths.append(self.path)
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
    backend = SimpleNamespace(raise_if_crashed=lambda: None, ready_poll_seconds=0.1)
    started = time.monotonic()
    asyncio.run(Backend._poll_ready(backend, SimpleNamespace(control_token=None), targets, timeout))
    return time.monotonic() - started


def test_a_member_answering_later_than_the_first_probe_is_ready():
    delay = READY_PROBE_TIMEOUT_SECONDS * 1.5  # misses the first probe, within the second (2x)
    with late_member(delay) as (ep, paths):
        took = poll([ep], timeout=30)
    assert delay < took < 30
    assert len(paths) == 2 and all(p == "/status?peers=counts" for p in paths), paths


def test_a_member_that_never_answers_in_time_is_named_after_the_deadline():
    with late_member(60) as (ep, _paths), pytest.raises(BackendError, match=r"1 of 1 nodes not ready after 5 s \(first: node-late"):
        poll([ep], timeout=5)
