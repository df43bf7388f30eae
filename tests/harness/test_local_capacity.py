"""The local backend spreads nodes over enough worker processes for each to stay within its own
descriptor limit, and refuses a plan the machine cannot hold before anything starts (issue 17)."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from harness.backends.local.capacity import (
    BYTES_PER_NODE, FDS_PER_NODE, FDS_PER_PROCESS, CapacityExceeded, Limits, nodes_per_process, workers_for,
)
from harness.errors import ExitCode

HERE_20K = Limits(nofile_hard=20_000, file_max=9_223_372_036_854_775_807, mem_available=24 * 2**30)


def test_ten_thousand_nodes_get_at_least_nine_workers_each_within_its_descriptor_limit() -> None:
    workers = workers_for(10_000, HERE_20K, cores=2)
    assert workers >= 9
    per_worker = -(-10_000 // workers)
    assert per_worker * FDS_PER_NODE + FDS_PER_PROCESS <= 20_000


def test_small_plans_keep_one_worker_per_core_or_fewer() -> None:
    assert workers_for(1_000, HERE_20K, cores=2) == 2
    assert workers_for(30, HERE_20K, cores=2) == 1


def test_a_plan_larger_than_memory_is_refused_naming_the_limit() -> None:
    small = Limits(nofile_hard=20_000, file_max=None, mem_available=1 * 2**30)
    nodes = 2**30 // BYTES_PER_NODE  # a whole GiB of nodes cannot fit in 80 % of one
    with pytest.raises(CapacityExceeded, match="MemAvailable") as e:
        workers_for(nodes, small, cores=2)
    assert e.value.exit_code == ExitCode.INVALID_INPUT


def test_a_plan_beyond_the_system_wide_file_limit_is_refused() -> None:
    with pytest.raises(CapacityExceeded, match="fs.file-max 50000"):
        workers_for(10_000, Limits(nofile_hard=20_000, file_max=50_000, mem_available=None), cores=2)


def test_a_descriptor_limit_too_small_for_one_node_is_refused() -> None:
    tiny = Limits(nofile_hard=FDS_PER_PROCESS + FDS_PER_NODE - 1, file_max=None, mem_available=None)
    assert nodes_per_process(tiny) == 0
    with pytest.raises(CapacityExceeded, match="RLIMIT_NOFILE"):
        workers_for(1, tiny)


def _lower_nofile() -> None:
    limit = FDS_PER_PROCESS + 10  # enough for the CLI itself, not for one node's worker
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))


def test_deploy_under_a_real_low_descriptor_limit_exits_2_and_starts_nothing(tmp_path: Path) -> None:
    """The real CLI, in a process whose hard RLIMIT_NOFILE really is too low (no mock)."""
    scenario = tmp_path / "s.yaml"
    scenario.write_text("name: capacity\nseed: 1\nduration: 10s\nnetwork:\n  nodes: 5\n")
    run_dir = tmp_path / "run"
    harness = Path(sys.executable).parent / "harness"
    result = subprocess.run([str(harness), "deploy", str(scenario), "--run-dir", str(run_dir)],
                            capture_output=True, text=True, timeout=120, preexec_fn=_lower_nofile,
                            env={**os.environ, "COLUMNS": "300"})
    assert result.returncode == ExitCode.INVALID_INPUT, result.stderr
    assert "RLIMIT_NOFILE hard limit 310" in " ".join(result.stderr.split())
    assert "Traceback" not in result.stderr
    assert not (run_dir / "state.json").exists() and not (run_dir / "logs").exists()
