"""Shared by the bitcoind fault tests of each backend (test_bitcoind_faults.py, local;
test_docker_bitcoind_faults.py): a small scenario with one real bitcoind, and the probes that tell
a frozen member from a live one through its control API and a P2P peer of the test's own."""

from __future__ import annotations

import asyncio
from typing import Any

from harness.backends.client import ControlAPIError, ControlClient
from harness.backends.endpoint import Endpoint
from tests.p2p_peer import BlockingPeer
from tests.waiting import wait_until

BSV_MAGIC = bytes.fromhex("dab5bffa")
SCENARIO = """\
name: bitcoind-faults
seed: 3
duration: 10m
network:
  nodes: {nodes}
  bitcoind: 1
  magic: dab5bffa
  time_scale: 0.05
  outbound_full_relay: 2
  block_relay: 0
"""
SILENT_S = 3.0  # a paused member must not answer within this; a live one answers in well under 1 s
ANSWER_TIMEOUT_S = 60.0  # a resumed or restarted member on a loaded 2-core machine


def wait_for(predicate: Any, timeout: float, what: str) -> Any:
    """tests/waiting.py's poller, with a member that does not answer yet (an error) taken as "not yet"."""

    def attempt() -> Any:
        try:
            return predicate()
        except Exception:  # noqa: BLE001 - a member not answering yet
            return None

    return wait_until(attempt, timeout, what, interval=0.5)


def status(token: str, ep: Endpoint, timeout: float) -> dict[str, Any]:
    """GET /status once, no retries: ControlAPIError if it does not answer within ``timeout``."""

    async def get() -> dict[str, Any]:
        async with ControlClient(token, timeout=timeout, retries=0) as c:
            return await c.status(ep)

    return asyncio.run(get())


def silent(token: str, ep: Endpoint) -> bool:
    try:
        status(token, ep, SILENT_S)
    except ControlAPIError:
        return True
    return False


def probe(host: str, port: int) -> BlockingPeer:
    """A P2P peer of the test that has completed the handshake with the member."""
    peer = BlockingPeer(host, port, magic=BSV_MAGIC, connect_timeout=10.0)
    try:
        peer.handshake()
    except BaseException:
        peer.close()
        raise
    return peer


def pings_unanswered(peer: BlockingPeer) -> bool:
    try:
        peer.ping_roundtrip(timeout=SILENT_S)
    except AssertionError:
        return True
    return False
