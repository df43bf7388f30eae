"""Who holds a loopback address: the kernel's socket tables (/proc/net/tcp, udp and their v6 twins)
joined to the processes' open descriptors (/proc/PID/fd), so that a refused deploy can name the
process in the way ("held by pid 4121: python -m pytest") instead of only guessing at another run.

Linux only, and only what this user may read: where /proc says nothing, the answer is empty and the
caller's message stays as it was.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

LISTEN = "0A"  # TCP_LISTEN in /proc/net/tcp's `st` column
UNCONNECTED = "07"  # TCP_CLOSE: how a bound UDP socket shows up


@dataclass(frozen=True)
class BoundSocket:
    ip: str
    port: int
    udp: bool
    state: str  # the kernel's hex state
    inode: int


def _address(text: str) -> tuple[str, int]:
    """'0100007F:484C' (IPv4) or 32 hex digits (IPv6, four host-order words) and a hex port."""
    hex_ip, hex_port = text.split(":")
    raw = bytes.fromhex(hex_ip)
    if len(raw) == 4:
        return socket.inet_ntop(socket.AF_INET, raw[::-1]), int(hex_port, 16)
    words = b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))
    return socket.inet_ntop(socket.AF_INET6, words), int(hex_port, 16)


def bound_sockets(pid: int | str = "self") -> Iterator[BoundSocket]:
    """Every TCP and UDP socket in the network namespace of `pid`, as the kernel lists it."""
    for proto, udp in (("tcp", False), ("tcp6", False), ("udp", True), ("udp6", True)):
        try:
            with open(f"/proc/{pid}/net/{proto}") as f:
                lines = f.read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) < 10:
                continue
            ip, port = _address(fields[1])
            yield BoundSocket(ip, port, udp, fields[3], int(fields[9]))


def socket_inodes(pid: int | str) -> set[int]:
    """The socket inodes among a process's open descriptors (empty if it is gone or not ours to read)."""
    found = set()
    try:
        fds = os.scandir(f"/proc/{pid}/fd")
    except OSError:
        return found
    with fds:
        for fd in fds:
            try:
                target = os.readlink(fd.path)
            except OSError:
                continue
            if target.startswith("socket:["):
                found.add(int(target[8:-1]))
    return found


def listening(pid: int | str = "self") -> set[tuple[str, int, bool]]:
    """(ip, port, udp) of the TCP listeners and bound UDP sockets a process holds."""
    mine = socket_inodes(pid)
    return {(s.ip, s.port, s.udp) for s in bound_sockets(pid) if s.inode in mine
            and (s.state == LISTEN or (s.udp and s.state == UNCONNECTED))}


def holders(addresses: Iterable[tuple[str, int, bool]]) -> dict[int, str]:
    """Pid -> command line of the processes holding a socket bound to any of (ip, port, udp)."""
    wanted = set(addresses)
    inodes = {s.inode for s in bound_sockets() if (s.ip, s.port, s.udp) in wanted and s.inode}
    found: dict[int, str] = {}
    if not inodes:
        return found
    for entry in os.scandir("/proc"):
        if entry.name.isdigit() and socket_inodes(entry.name) & inodes:
            try:
                with open(f"/proc/{entry.name}/cmdline", "rb") as f:
                    found[int(entry.name)] = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
            except OSError:
                continue
    return found
