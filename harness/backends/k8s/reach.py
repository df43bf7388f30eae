"""Reaching pods from where the harness runs.

Inside the cluster (the controller's pod) a node's control URL is its stable pod DNS name. Outside
(`harness run` on a laptop) pod names do not resolve, so every control port the harness talks to
gets a local listener on 127.0.0.1 whose connections are carried to the pod by the API server's
port-forward (the kubernetes client's `portforward`, which hands back a socket per connection).
Forwarders are opened on first use and live as long as the backend object.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable
from typing import Any

from harness.errors import BackendError

LOCALHOST = "127.0.0.1"
_CHUNK = 65536
_BACKLOG = 64


def in_cluster() -> bool:
    """Running in a pod: the kubelet sets KUBERNETES_SERVICE_HOST in every container."""
    return bool(os.environ.get("KUBERNETES_SERVICE_HOST"))


def _pump(src: Any, dst: Any) -> None:
    """Copy until either side closes, then close both (the other direction's pump ends too)."""
    try:
        while True:
            data = src.recv(_CHUNK)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass  # a reset on either side ends the connection, as it would end a direct one
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()


class Forwarder:
    """A local listener whose every connection is joined to a fresh remote socket from
    ``open_remote`` (a port-forward to one pod port, or anything socket-like)."""

    def __init__(self, open_remote: Callable[[], Any], host: str = LOCALHOST) -> None:
        self.open_remote = open_remote
        self.listener = socket.create_server((host, 0), backlog=_BACKLOG)
        self.address = self.listener.getsockname()[:2]
        self._closed = threading.Event()
        threading.Thread(target=self._accept, name=f"forward-{self.address[1]}", daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://{self.address[0]}:{self.address[1]}"

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                local, _ = self.listener.accept()
            except OSError:
                return  # closed
            try:
                remote = self.open_remote()
            except Exception:  # noqa: BLE001 - the client sees a closed connection, as with an unreachable pod
                local.close()
                continue
            for a, b in ((local, remote), (remote, local)):
                threading.Thread(target=_pump, args=(a, b), daemon=True).start()

    def close(self) -> None:
        self._closed.set()
        self.listener.close()


class PodForwards:
    """Forwarders to pod ports of one namespace, one per (pod, port), made on first use."""

    def __init__(self, api: Any, namespace: str) -> None:
        self.api, self.namespace = api, namespace
        self._forwarders: dict[tuple[str, int], Forwarder] = {}
        self._lock = threading.Lock()

    def _open(self, pod: str, port: int) -> Any:
        from kubernetes import client
        from kubernetes.stream import portforward

        pf = portforward(client.CoreV1Api(self.api).connect_get_namespaced_pod_portforward, pod, self.namespace,
                         ports=str(port))
        return pf.socket(port)

    def url(self, pod: str, port: int) -> str:
        with self._lock:
            if (pod, port) not in self._forwarders:
                try:
                    self._forwarders[(pod, port)] = Forwarder(lambda: self._open(pod, port))
                except OSError as e:
                    raise BackendError(f"cannot open a local port for {pod}:{port}: {e}") from None
            return self._forwarders[(pod, port)].url

    def close(self) -> None:
        with self._lock:
            for f in self._forwarders.values():
                f.close()
            self._forwarders.clear()
