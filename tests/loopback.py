"""Loopback addresses for tests that run nodes inside the pytest process.

One counter per process, here and not in tests/node/conftest.py: pytest loads that file as the
module `conftest` while other test packages import it as `tests.node.conftest`, two modules with a
counter each, and both handed out the same first addresses."""

from __future__ import annotations

import itertools
import os

# A per-process /16 in 127.0.0.0/8 so parallel test runs of other engineers do not collide.
OCTET = 64 + os.getpid() % 150
_hosts = itertools.count(1)


def next_ip() -> str:
    n = next(_hosts)
    return f"127.{OCTET}.{n // 250}.{n % 250 + 1}"
