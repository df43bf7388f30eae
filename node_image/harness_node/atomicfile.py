"""One way to replace a file atomically: a reader (or a crash) sees the old file or the new one.

Temp file in the same directory (rename is atomic only within one filesystem), fsync the data,
rename over the target, then fsync the directory so the rename itself survives a power cut.
Used by addrman's peers.json, the ban list, anchors and the harness's run directory.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes, mode: int = 0o644) -> None:
    """Write `data` to `path` atomically with permission bits `mode` (0o600 for files holding tokens).

    The mode is set on the temp file before the rename, so the target never exists with wider
    permissions, not even for an instant."""
    target = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(target.parent)


def write_json_atomic(path: str | os.PathLike[str], obj: Any, mode: int = 0o644, indent: int | None = None) -> None:
    """`obj` as JSON (UTF-8), written with write_bytes_atomic."""
    write_bytes_atomic(path, json.dumps(obj, indent=indent).encode("utf-8"), mode=mode)


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:  # some filesystems do not allow opening a directory; the rename still happened
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
