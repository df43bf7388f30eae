"""A raw P2P client that misbehaves on purpose, so that the ban and protocol-error series exist in a
live test before the spam attackers of issue 10 do: it completes the handshake, sends one frame with
a bad checksum, then oversized `addr` messages (1,001 entries, 20 points each) until it is banned.

Frames are built here by hand from the wire format (not with the node's codec) so the test exercises
the node's parser with bytes it did not produce.
"""

from __future__ import annotations

import hashlib
import socket
import struct
import time

MAGIC = bytes.fromhex("fabfb5da")  # regtest, the planner's default
PROTOCOL_VERSION = 70016
MAX_ADDR = 1000  # Core's MAX_ADDR_TO_SEND: one more is misbehaviour


def _checksum(payload: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(payload).digest()).digest()[:4]


def frame(command: str, payload: bytes, bad_checksum: bool = False) -> bytes:
    checksum = _checksum(payload)
    if bad_checksum:
        checksum = bytes(b ^ 0xFF for b in checksum)
    return MAGIC + command.encode().ljust(12, b"\0") + struct.pack("<I", len(payload)) + checksum + payload


def _netaddr(ip: str, port: int) -> bytes:
    return struct.pack("<Q", 0) + b"\0" * 10 + b"\xff\xff" + socket.inet_aton(ip) + struct.pack(">H", port)


def _varint(n: int) -> bytes:
    return bytes([n]) if n < 0xFD else b"\xfd" + struct.pack("<H", n)


def version_payload(to: tuple[str, int], me: tuple[str, int]) -> bytes:
    return (struct.pack("<iQq", PROTOCOL_VERSION, 0, int(time.time())) + _netaddr(*to) + _netaddr(*me)
            + struct.pack("<Q", 0x5EED) + b"\x00" + struct.pack("<i", 0) + b"\x00")


def oversized_addr() -> bytes:
    now = int(time.time())
    entry = struct.pack("<I", now) + _netaddr("192.0.2.1", 8333)  # a documentation address: never dialled
    return _varint(MAX_ADDR + 1) + entry * (MAX_ADDR + 1)


def _read_commands(sock: socket.socket, buffer: bytearray) -> list[str]:
    data = sock.recv(1 << 16)
    if not data:
        raise ConnectionError("closed")
    buffer.extend(data)
    commands = []
    while len(buffer) >= 24:
        length = struct.unpack("<I", buffer[16:20])[0]
        if len(buffer) < 24 + length:
            break
        commands.append(buffer[4:16].rstrip(b"\0").decode())
        del buffer[:24 + length]
    return commands


def misbehave_until_banned(target: tuple[str, int], source_ip: str, timeout: float = 30.0) -> list[str]:
    """Handshake, one bad checksum, oversized addr until the node closes the connection; returns the
    commands the node sent (the handshake at least)."""
    seen: list[str] = []
    buffer = bytearray()
    with socket.create_connection(target, timeout=timeout, source_address=(source_ip, 0)) as sock:
        sock.sendall(frame("version", version_payload(target, sock.getsockname())))
        deadline = time.monotonic() + timeout
        while not {"version", "verack"} <= set(seen):
            if time.monotonic() > deadline:
                raise TimeoutError(f"no handshake from {target}: got {seen}")
            seen += _read_commands(sock, buffer)
        sock.sendall(frame("verack", b""))
        sock.sendall(frame("ping", struct.pack("<Q", 1), bad_checksum=True))
        try:
            for _ in range(10):  # five are enough at 20 points each; the rest must never be read
                sock.sendall(frame("addr", oversized_addr()))
                time.sleep(0.05)
            while time.monotonic() < deadline:
                seen += _read_commands(sock, buffer)
        except (ConnectionError, OSError):
            return seen  # banned and disconnected, as expected
    raise TimeoutError(f"{target} never disconnected the misbehaving peer")
