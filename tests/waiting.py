"""Waiting for a live system's condition: poll until the predicate returns something true, or fail
naming what was awaited. The one poller of the test suite (node, harness, observability and
bitcoind tests all import it), so every timeout message reads the same."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class WaitTimeout(AssertionError, TimeoutError):
    """A test failure (AssertionError) that code waiting on a process can also catch as a timeout."""


def wait_until(predicate: Callable[[], T], timeout: float = 30.0, what: str = "condition",
               interval: float = 0.02) -> T:
    """Poll `predicate` every `interval` seconds until it returns something true, and return that;
    `WaitTimeout` after `timeout` seconds. The default timeout is generous on purpose: a loaded
    2-core CI machine is slow, and a passing test never waits it out."""
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise WaitTimeout(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)
    return value
