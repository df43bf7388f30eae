"""Waiting for a live system's condition: poll until the predicate returns something true, or fail
naming what was awaited. The one poller of the test suite (node, harness, observability, Docker
and bitcoind tests all import it), so every timeout message reads the same.

Every wait that succeeds after using more than half of its timeout is a near miss: on a slower
machine it would have failed. They are kept in `NEAR_MISSES`, and the terminal summary
(tests/conftest.py) lists them, so a run that passes still shows which bounds are getting tight."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")

NEAR_MISS_SHARE = 0.5


class WaitTimeout(AssertionError, TimeoutError):
    """A test failure (AssertionError) that code waiting on a process can also catch as a timeout."""


@dataclass(frozen=True)
class NearMiss:
    test: str
    what: str
    waited: float
    timeout: float


NEAR_MISSES: list[NearMiss] = []


def wait_until(predicate: Callable[[], T], timeout: float = 30.0, what: str | Callable[[], str] = "condition",
               interval: float = 0.02) -> T:
    """Poll `predicate` every `interval` seconds until it returns something true, and return that;
    `WaitTimeout` after `timeout` seconds, its message `what` (a callable is asked only when the text
    is needed, at the timeout or for a near miss, so it can describe the state the wait ended in). The default timeout is generous on purpose: a loaded
    2-core CI machine is slow, and a passing test never waits it out."""
    started = time.monotonic()
    deadline = started + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise WaitTimeout(f"timed out after {timeout} s waiting for {what() if callable(what) else what}")
        time.sleep(interval)
    waited = time.monotonic() - started
    if waited > NEAR_MISS_SHARE * timeout:
        test = os.environ.get("PYTEST_CURRENT_TEST", "").rsplit(" ", 1)[0]
        NEAR_MISSES.append(NearMiss(test, what() if callable(what) else what, waited, timeout))
    return value
