"""Message capture of a run's members: switch it at run time (the node's POST /capture) and read a
member's captures back, decoded with the node's own codec (docs/capture.md).

The captures live in the member's data directory (`<run dir>/data/<member>/message_capture`),
so `messages` reads a finished run as well as a running one.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.analysis.model import CheckResult, CheckVerdict
from harness.backends.client import ControlClient, call_sync
from harness.backends.registry import make_backend
from harness.errors import BackendError, HarnessError
from harness.plan.model import Plan
from harness.run.rundir import RunDir
from harness_node.net.capture import CAPTURE_DIR, CapturedMessage, read_capture
from harness_node.wire.codec import DecodeError
from harness_node.wire.messages import decode


class CaptureError(HarnessError):
    """No such member, or nothing captured for it."""


def capture_dir(run: RunDir, member: str) -> Path:
    return run.datadir(member) / CAPTURE_DIR


def set_capture(run_dir: str | Path, member: str, on: bool) -> dict[str, Any]:
    """Start (`on`) or stop a running member's capture; its state as the node reports it."""
    run = RunDir(run_dir)
    state = run.load_state()
    be = make_backend(state.backend, run)
    endpoints = be.node_endpoints()
    if member not in endpoints:
        raise CaptureError(f"no node named {member!r} in this run (capture works on harness nodes: "
                           f"{', '.join(sorted(endpoints)) or 'none running'})")
    if not be.is_running():
        raise BackendError(f"nothing is running in {run.path}; deploy first")

    async def call(client: ControlClient) -> dict[str, Any]:
        return await client.request(endpoints[member], "POST", "/capture", {"on": on})

    return call_sync(state.control_token, call)


def messages(run_dir: str | Path, member: str, peer: str | None = None,
             command: str | None = None) -> list[dict[str, Any]]:
    """The member's captured messages in time order, each decoded; filtered by peer (ip:port or ip)
    and command when given."""
    run = RunDir(run_dir)
    root = capture_dir(run, member)
    if not root.is_dir():
        if not run.datadir(member).is_dir():
            raise CaptureError(f"no member named {member!r} has a data directory in {run.path}")
        raise CaptureError(f"{member} has no captures in {root}: turn capture on (scenario `capture: true` "
                           f"or `harness capture start {member}`)")
    found = read_capture(root)
    if peer is not None:
        found = [m for m in found if m.peer == peer or m.peer.rsplit(":", 1)[0] == peer]
    if command is not None:
        found = [m for m in found if m.command == command]
    return [describe(m) for m in found]


VICTIM_PARAMS = ("victim", "victims", "targets", "nodes")  # check params that name the nodes a check is about


def failed_check_captures(run: RunDir, plan: Plan, checks: Sequence[CheckResult]) -> dict[str, dict[str, str]]:
    """For every failed check, the capture directory (relative to the run directory) of each of its
    victims that has one: the nodes its params name, or every node when it names none."""
    failed = {c.name for c in checks if c.verdict is CheckVerdict.FAIL}
    links: dict[str, dict[str, str]] = {}
    for check in plan.checks:
        if check.check not in failed:
            continue
        named = [n for key in VICTIM_PARAMS for n in (check.params.get(key) or []) if isinstance(n, str)]
        victims = named or plan.names()
        found = {v: str(capture_dir(run, v).relative_to(run.path)) for v in victims if capture_dir(run, v).is_dir()}
        if found:
            links.setdefault(check.check, {}).update(found)
    return links


def describe(m: CapturedMessage) -> dict[str, Any]:
    """One record as JSON: the raw payload in hex (byte for byte) and the codec's reading of it."""
    try:
        msg = decode(m.command, m.payload)
        decoded = repr(msg) if msg is not None else None
        error = None if msg is not None else "unknown command"
    except DecodeError as e:
        decoded, error = None, str(e)
    when = datetime.datetime.fromtimestamp(m.time_us / 1e6, datetime.timezone.utc)
    return {"time_us": m.time_us, "time": when.isoformat(timespec="microseconds").replace("+00:00", "Z"),
            "peer": m.peer, "direction": m.direction, "command": m.command, "size": len(m.payload),
            "payload": m.payload.hex(), "decoded": decoded, "error": error}
