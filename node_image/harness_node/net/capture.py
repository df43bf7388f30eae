"""Message capture: every message a node sends and receives, per peer, in Bitcoin Core's
`-capturemessages` file format, bounded by a byte cap with the oldest segments dropped first.

Layout (docs/capture.md): ``<datadir>/message_capture/<peer ip_port>/msgs_recv.dat`` and
``msgs_sent.dat``; each record is the capture time in microseconds since the epoch (u64 LE), the
command padded with NULs to 12 bytes, the payload length (u32 LE), then the payload. Core's parser
tells the direction from "recv"/"sent" in the file's stem, so older segments keep it:
``msgs_recv.<seq>.dat`` (seq grows over the whole member, so the lowest is the oldest).

Only the node's own connections call ``record``; when capture is off the node holds no
``MessageCapture`` and a connection pays one attribute test per message.
"""

from __future__ import annotations

import os
import re
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

CAPTURE_DIR = "message_capture"
COMMAND_SIZE = 12
RECORD_HEADER = struct.Struct("<Q12sI")  # time µs, command, payload length
DIRECTIONS = ("recv", "sent")
DEFAULT_MAX_BYTES = 64 * 1024 * 1024
MIN_MAX_BYTES = 4096
# A stream's open segment is rolled once it holds this share of the cap, so that dropping one
# segment frees a bounded part of the budget and never the whole history at once.
SEGMENTS_PER_CAP = 8
_SEGMENT_NAME = re.compile(r"^msgs_(recv|sent)(?:\.(\d+))?\.dat$")


def peer_dirname(address: str) -> str:
    """Core's directory name for a peer: its ip:port with ':' replaced by '_'."""
    return address.replace(":", "_")


def encode_record(time_us: int, command: str, payload: bytes) -> bytes:
    return RECORD_HEADER.pack(time_us, command.encode("ascii")[:COMMAND_SIZE], len(payload)) + payload


@dataclass
class _Segment:
    path: Path
    seq: int  # order of creation over the whole member: the lowest is the oldest
    size: int


class _Stream:
    """One peer and direction: the open segment and its rolled predecessors."""

    def __init__(self, directory: Path, direction: str) -> None:
        self.directory = directory
        self.direction = direction
        self.current: _Segment | None = None
        self.fd: int | None = None

    @property
    def current_path(self) -> Path:
        return self.directory / f"msgs_{self.direction}.dat"

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


class MessageCapture:
    """Writes a member's captures; ``total_bytes`` (and what is on disk) never exceeds ``max_bytes``."""

    def __init__(self, root: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        if max_bytes < MIN_MAX_BYTES:
            raise ValueError(f"capture max_bytes must be >= {MIN_MAX_BYTES}, got {max_bytes}")
        self.root = Path(root)
        self.max_bytes = max_bytes
        self.segment_bytes = max(max_bytes // SEGMENTS_PER_CAP, 1024)
        self.total_bytes = 0
        self.records = 0
        self.dropped_bytes = 0  # removed to hold the cap
        self.skipped = 0  # single records larger than the cap, never written
        self._streams: dict[tuple[str, str], _Stream] = {}
        self._rolled: list[_Segment] = []
        self._seq = 0
        self._adopt_existing()

    def _adopt_existing(self) -> None:
        """Captures of an earlier session (a restart, `capture stop` then `start`) count against the
        cap and are the oldest; their open segments become rolled ones."""
        found: list[tuple[int, Path]] = []
        if self.root.is_dir():
            for path in self.root.glob("*/msgs_*.dat"):
                m = _SEGMENT_NAME.match(path.name)
                if m:
                    found.append((int(m.group(2)) if m.group(2) else -1, path))
        found.sort(key=lambda item: (item[0] < 0, item[0]))
        for old_seq, path in found:
            seq = self._next_seq()
            if old_seq < 0:  # an old open segment: give it a rolled name after the rolled ones
                target = path.with_name(f"{path.stem}.{seq}.dat")
                path.rename(target)
                path = target
            size = path.stat().st_size
            self._rolled.append(_Segment(path, seq, size))
            self.total_bytes += size
        self._rolled.sort(key=lambda s: s.seq)
        self._enforce_cap()

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def record(self, peer: str, direction: str, command: str, payload: bytes) -> None:
        data = encode_record(time.time_ns() // 1000, command, payload)
        if len(data) > self.max_bytes:
            self.skipped += 1
            return
        stream = self._streams.get((peer, direction))
        if stream is None:
            stream = self._streams[(peer, direction)] = _Stream(self.root / peer_dirname(peer), direction)
        if stream.current is not None and stream.current.size + len(data) > self.segment_bytes:
            self._roll(stream)
        # room first, then the write: the cap holds on disk at every moment (a reader may look any time)
        self._enforce_cap(incoming=len(data))
        if stream.current is None:
            stream.directory.mkdir(parents=True, exist_ok=True)
            stream.fd = os.open(stream.current_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            stream.current = _Segment(stream.current_path, self._next_seq(), 0)
        assert stream.fd is not None
        os.write(stream.fd, data)  # unbuffered: `harness messages` reads a live capture
        stream.current.size += len(data)
        self.total_bytes += len(data)
        self.records += 1

    def _roll(self, stream: _Stream) -> None:
        segment = stream.current
        assert segment is not None
        stream.close()
        rolled = segment.path.with_name(f"msgs_{stream.direction}.{segment.seq}.dat")
        segment.path.rename(rolled)
        segment.path = rolled
        stream.current = None
        self._rolled.append(segment)
        self._rolled.sort(key=lambda s: s.seq)

    def _enforce_cap(self, incoming: int = 0) -> None:
        """Drop the oldest segments until `incoming` more bytes fit under the cap."""
        while self.total_bytes + incoming > self.max_bytes:
            if not self._rolled:
                # Only open segments are left (many peers): roll the oldest one so it can go.
                oldest = min((s for s in self._streams.values() if s.current is not None),
                             key=lambda s: s.current.seq)  # type: ignore[union-attr]
                self._roll(oldest)
            segment = self._rolled.pop(0)
            segment.path.unlink(missing_ok=True)
            self.total_bytes -= segment.size
            self.dropped_bytes += segment.size

    def close(self) -> None:
        for stream in self._streams.values():
            stream.close()
        self._streams.clear()

    def info(self) -> dict[str, int | str]:
        return {"dir": str(self.root), "max_bytes": self.max_bytes, "bytes": self.total_bytes,
                "records": self.records, "dropped_bytes": self.dropped_bytes, "skipped": self.skipped}


# --- reading ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class CapturedMessage:
    time_us: int
    peer: str  # ip:port
    direction: str  # recv | sent
    command: str
    payload: bytes


def read_file(path: Path, peer: str, direction: str) -> Iterator[CapturedMessage]:
    """The records of one capture file; a record cut short at the end (a live writer) is skipped."""
    data = path.read_bytes()
    offset = 0
    while offset + RECORD_HEADER.size <= len(data):
        time_us, raw_command, length = RECORD_HEADER.unpack_from(data, offset)
        start = offset + RECORD_HEADER.size
        if start + length > len(data):
            return
        command = raw_command.split(b"\0", 1)[0].decode("ascii", "replace")
        yield CapturedMessage(time_us, peer, direction, command, data[start:start + length])
        offset = start + length


def read_capture(root: Path) -> list[CapturedMessage]:
    """Every record under a member's capture directory, in time order (stable per file)."""
    messages: list[CapturedMessage] = []
    if not Path(root).is_dir():
        return messages
    for peer_dir in sorted(p for p in Path(root).iterdir() if p.is_dir()):
        peer = _peer_from_dirname(peer_dir.name)
        files = []
        for path in peer_dir.iterdir():
            m = _SEGMENT_NAME.match(path.name)
            if m:
                # rolled segments (numbered) before the open one, each direction in creation order
                files.append((int(m.group(2)) if m.group(2) else float("inf"), m.group(1), path))
        for _, direction, path in sorted(files, key=lambda f: (f[0], f[1])):
            messages.extend(read_file(path, peer, direction))
    messages.sort(key=lambda m: m.time_us)
    return messages


def _peer_from_dirname(name: str) -> str:
    """Undo peer_dirname: the last '_' was the port's ':' (an IPv6 host's ones were inside [])."""
    host, sep, port = name.rpartition("_")
    return f"{host.replace('_', ':')}:{port}" if sep else name
