"""Every file of a real local deploy that holds the control token is mode 0600 (issue 9 item 7):
a run with nodes and a seeder, on real loopback processes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from harness.backends import registry
from harness.plan.planner import LoopbackAllocator, plan
from harness.run.rundir import RunDir
from harness.scenario import parse_scenario

pytestmark = pytest.mark.timeout(120)


class AsideAllocator(LoopbackAllocator):
    """/16s no other test uses."""

    HONEST_GROUPS = range(211, 213)


WITH_SEEDER = """\
name: tokens
seed: 5
duration: 30s
network:
  nodes: 2
  time_scale: 0.05
seeder:
  mode: honest
"""


def test_a_local_deploy_always_has_a_token_and_writes_it_only_to_0600_files(tmp_path: Path) -> None:
    planned = plan(parse_scenario(WITH_SEEDER), allocator=AsideAllocator())
    run = RunDir(tmp_path / "run")
    backend = registry.make_backend("local", run)
    backend.up(planned)
    try:
        backend.wait_ready(timeout=60)
        token = run.load_state().control_token
        assert token and len(token) >= 32  # the harness generated one; none was configured
        holders = []
        for root, _dirs, files in os.walk(run.path):
            for name in files:
                path = Path(root) / name
                try:
                    if token.encode() in path.read_bytes():
                        holders.append(path)
                except OSError:
                    continue
        names = {p.name for p in holders}
        assert {"worker-0.json", "seeder.json"} <= names, names  # what we expect to hold it
        wide = {str(p.relative_to(run.path)): oct(p.stat().st_mode & 0o777) for p in holders
                if p.stat().st_mode & 0o077}
        assert wide == {}, f"token files readable by others: {wide}"
    finally:
        backend.down()
