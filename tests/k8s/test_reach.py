"""Reaching pods from outside the cluster: the local listener and its byte pumps, over real
sockets on loopback. The remote end here is a real HTTP server reached by a plain TCP connection:
the API server's port-forward stream (the kubernetes client's `portforward`, which hands back a
socket) cannot run without a cluster, so that one call is left to the e2e test on kind."""

from __future__ import annotations

import socket
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from harness.backends.k8s.reach import Forwarder, in_cluster
from tests.k8s.httpstub import Quiet, serving

HOST = "127.213.15.2"  # this file's own loopback address (test_backend_cluster.py uses .1)


class Status(Quiet):
    def do_GET(self) -> None:  # noqa: N802
        body = (b'{"name": "node-0", "path": "%s"}' % self.path.encode()) * 2000  # > one chunk
        self.reply(body)


@pytest.fixture()
def server() -> Iterator[tuple[str, int]]:
    with serving(HOST, Status) as address:
        yield address


def test_connections_are_carried_to_the_remote_both_ways(server: tuple[str, int]) -> None:
    opened = []

    def open_remote() -> socket.socket:
        opened.append(1)
        return socket.create_connection(server, timeout=5)

    fw = Forwarder(open_remote)
    try:
        assert fw.url.startswith("http://127.0.0.1:")
        for path in ("/status", "/peers"):
            with urllib.request.urlopen(fw.url + path, timeout=10) as resp:
                body = resp.read()
            assert body == (b'{"name": "node-0", "path": "%s"}' % path.encode()) * 2000
        assert len(opened) == 2  # one remote connection per local one
    finally:
        fw.close()


def test_an_unreachable_pod_is_a_closed_connection_not_a_hang() -> None:
    def open_remote() -> socket.socket:
        raise ConnectionRefusedError("pod gone")

    fw = Forwarder(open_remote)
    try:
        with pytest.raises((urllib.error.URLError, ConnectionError, OSError)):
            urllib.request.urlopen(fw.url + "/status", timeout=10)
    finally:
        fw.close()


def test_in_cluster_is_told_by_the_kubelets_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    assert not in_cluster()
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
    assert in_cluster()
