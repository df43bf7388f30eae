"""Every file of a real local deploy that holds the control token is mode 0600 (issue 9 item 7):
a run with nodes and a seeder, on real loopback processes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.harness.test_backend_contract import TWO_NODES, local_deploy

pytestmark = pytest.mark.timeout(120)


# the contract test's two-node scenario, with a seeder (it writes seeder.json, which holds the token)
WITH_SEEDER = TWO_NODES.replace("seeder:\n  enabled: false\n", "seeder:\n  mode: honest\n")


def test_a_local_deploy_always_has_a_token_and_writes_it_only_to_0600_files(tmp_path: Path) -> None:
    assert WITH_SEEDER != TWO_NODES
    with local_deploy(tmp_path, WITH_SEEDER, ready_within=60) as (_planned, run, _backend):
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
