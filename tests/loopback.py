"""Loopback addresses for tests that run nodes inside the pytest process.

One counter per process, here and not in tests/node/conftest.py: pytest loads that file as the
module `conftest` while other test packages import it as `tests.node.conftest`, two modules with a
counter each, and both handed out the same first addresses."""

from __future__ import annotations

import itertools
import os

# A per-process /16 in 127.0.0.0/8 so parallel test runs of other engineers do not collide.
OCTET = 64 + os.getpid() % 150
# ... and within it only the upper half of the third octet. That /16 is also one the planner hands
# out (honest nodes 127.1-99, attackers 127.100-239), always from 127.G.0.1 upwards: a plan needs
# 128 * 254 nodes in one /16 to reach 127.G.128.x. Starting at .0.2 as this counter once did, a
# test run's first node (ports 18444 and 18445) sat exactly on an attacker of bootstrap-poison.yaml,
# and another run on this machine could not deploy that scenario (CI, 127.108 and 127.109).
THIRD = 128
_hosts = itertools.count(1)


def next_ip() -> str:
    n = next(_hosts)
    return f"127.{OCTET}.{THIRD + n // 250}.{n % 250 + 1}"
