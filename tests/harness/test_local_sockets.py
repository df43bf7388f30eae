"""harness/backends/local/sockets.py against the kernel's own tables: real sockets of this process,
TCP and UDP, IPv4 and IPv6 loopback, found by address and traced to this pid."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from harness.backends.local import sockets


def _bound(family: int, kind: int, ip: str) -> socket.socket:
    s = socket.socket(family, kind)
    s.bind((ip, 0))
    if kind == socket.SOCK_STREAM:
        s.listen()
    return s


def test_this_processs_listeners_and_udp_sockets_are_found_by_address() -> None:
    made = [_bound(socket.AF_INET, socket.SOCK_STREAM, "127.243.7.1"), _bound(socket.AF_INET, socket.SOCK_DGRAM, "127.243.7.2")]
    try:
        made.append(_bound(socket.AF_INET6, socket.SOCK_STREAM, "::1"))
    except OSError:
        pytest.fail("no IPv6 loopback on this machine") if os.environ.get("CI") else pytest.skip("no IPv6 loopback")
    try:
        wanted = {(s.getsockname()[0], s.getsockname()[1], s.type == socket.SOCK_DGRAM) for s in made}
        assert wanted <= sockets.listening()
        held = sockets.holders(wanted)
        assert list(held) == [os.getpid()] and "pytest" in held[os.getpid()], held
    finally:
        for s in made:
            s.close()
    assert not wanted & sockets.listening()  # closed: gone from the kernel's table
    assert sockets.holders(wanted) == {}


def test_a_connected_socket_is_not_a_listener_and_another_process_is_named() -> None:
    server = _bound(socket.AF_INET, socket.SOCK_STREAM, "127.243.7.3")
    client = socket.create_connection(server.getsockname())
    child = subprocess.Popen([sys.executable, "-c", "import socket,sys; s=socket.socket(); s.bind(('127.243.7.4', 0)); "
                              "s.listen(); print(s.getsockname()[1], flush=True); sys.stdin.read()"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        port = int(child.stdout.readline())
        mine = sockets.listening()
        assert (server.getsockname()[0], server.getsockname()[1], False) in mine
        assert not any(p == client.getsockname()[1] for _, p, _ in mine)  # the client end only connects
        held = sockets.holders([("127.243.7.4", port, False)])
        assert list(held) == [child.pid] and "sys.stdin.read()" in held[child.pid]
    finally:
        child.stdin.close()
        child.wait(10)
        client.close()
        server.close()
