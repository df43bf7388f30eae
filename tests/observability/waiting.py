"""Waiting for a live system's condition (tests/waiting.py), polled every half second: each poll of
these tests is an HTTP query to Prometheus or a node, and a faster poll would only load the machine."""

from __future__ import annotations

from functools import partial

from tests.waiting import wait_until as _wait_until

POLL_SECONDS = 0.5

wait_until = partial(_wait_until, interval=POLL_SECONDS)
