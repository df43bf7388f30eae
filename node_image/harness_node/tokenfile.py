"""The control API's bearer token read from a file (`--token-file`): how a Kubernetes Secret or a
Docker secret reaches the node and the seeder without the token sitting in a config file."""

from __future__ import annotations

import pathlib


def read_token_file(path: str | pathlib.Path) -> str:
    """The file's content without surrounding whitespace (a Secret often ends with a newline).
    Raises ValueError naming the file if it cannot be read or is empty."""
    p = pathlib.Path(path)
    try:
        token = p.read_text().strip()
    except OSError as e:
        raise ValueError(f"--token-file {p}: {e.strerror}") from None
    if not token:
        raise ValueError(f"--token-file {p}: the file is empty")
    return token
