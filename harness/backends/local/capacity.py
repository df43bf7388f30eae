"""How many worker processes a local plan needs, and whether this machine can hold it at all.

A process may hold at most RLIMIT_NOFILE's hard limit of descriptors (20,000 on the project's
machine; even root cannot raise it past fs.nr_open), and every node costs about
``FDS_PER_NODE``. So nodes are spread over enough workers that each stays inside its own limit
-- not just one worker per core -- and a plan that the machine cannot hold (descriptors or memory)
is refused before anything starts, with a message naming the limit.
"""

from __future__ import annotations

import math
import os
import resource
from dataclasses import dataclass
from pathlib import Path

from harness.errors import ExitCode, HarnessError

# One node: its P2P listener, its control-API listener, Core's 8 full-relay + 2 block-relay outbound
# and on average as many inbound (every link has two ends), plus a feeler or dial in flight.
FDS_PER_NODE = 23
# Per process, not per node: stdio, the log, the event loop's selector and self-pipe, the seeder's
# DNS queries, imported modules' files, and dials in flight while the graph forms. A host keeps the
# same 300 for itself when its nodes share its descriptors (harness_node/peering/descriptors.py):
# there, inbound links get what the nodes' listeners and outbound slots leave, whatever this plan
# assumed about their spread.
FDS_PER_PROCESS = 300
# Measured (docs/benchmarks.md): ~145 kB per node in a host process, ~40 MB per interpreter with
# the node code, aiohttp and prometheus-client. Budgeted with headroom.
BYTES_PER_NODE = 200 * 1024
BYTES_PER_PROCESS = 48 * 1024 * 1024
MEMORY_SHARE = 0.8  # leave a fifth of the available memory to the OS and everything else


class CapacityExceeded(HarnessError):
    """The plan does not fit this machine: nothing was started."""

    exit_code = ExitCode.INVALID_INPUT


@dataclass(frozen=True)
class Limits:
    """What this machine allows: per-process descriptors, system-wide descriptors, memory."""

    nofile_hard: int  # RLIMIT_NOFILE hard limit, inherited by every worker
    file_max: int | None  # fs.file-max: descriptors the whole system may open
    mem_available: int | None  # bytes (MemAvailable)

    @classmethod
    def of_this_machine(cls) -> "Limits":
        _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        return cls(nofile_hard=hard if hard != resource.RLIM_INFINITY else 1 << 20,
                   file_max=_read_int(Path("/proc/sys/fs/file-max")), mem_available=_mem_available())


def nodes_per_process(limits: Limits) -> int:
    """The most nodes one worker can hold within its descriptor limit (0: not even one)."""
    return max(0, (limits.nofile_hard - FDS_PER_PROCESS) // FDS_PER_NODE)


def workers_for(nodes: int, limits: Limits, cores: int | None = None, min_per_worker: int = 50) -> int:
    """One worker per core (fewer for small plans: an interpreter costs ~40 MB), and more when one
    worker's descriptor limit cannot hold its share. Raises CapacityExceeded if the plan cannot fit."""
    if nodes <= 0:
        return 1
    per_process = nodes_per_process(limits)
    if per_process == 0:
        raise CapacityExceeded(
            f"the open-files limit (RLIMIT_NOFILE hard limit {limits.nofile_hard}) cannot hold even one node: "
            f"a worker needs {FDS_PER_PROCESS} descriptors plus {FDS_PER_NODE} per node; raise it (ulimit -Hn) "
            f"or run on a machine that allows more")
    cores = cores or os.cpu_count() or 1
    workers = max(1, min(cores, math.ceil(nodes / min_per_worker)), math.ceil(nodes / per_process))
    check_fits(nodes, workers, limits)
    return workers


def check_fits(nodes: int, workers: int, limits: Limits) -> None:
    """Refuse a plan whose descriptors or memory exceed what this machine has."""
    fds = nodes * FDS_PER_NODE + workers * FDS_PER_PROCESS
    if limits.file_max is not None and fds > limits.file_max:
        raise CapacityExceeded(
            f"{nodes} nodes need about {fds} open files in all, more than the system-wide limit "
            f"(fs.file-max {limits.file_max}); plan fewer nodes")
    need = nodes * BYTES_PER_NODE + workers * BYTES_PER_PROCESS
    if limits.mem_available is not None and need > limits.mem_available * MEMORY_SHARE:
        raise CapacityExceeded(
            f"{nodes} nodes in {workers} worker processes need about {need / 2**20:,.0f} MiB "
            f"({BYTES_PER_NODE // 1024} kB per node + {BYTES_PER_PROCESS // 2**20} MiB per process); "
            f"the memory limit here is {MEMORY_SHARE:.0%} of MemAvailable "
            f"{limits.mem_available / 2**20:,.0f} MiB; plan fewer nodes")


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _mem_available() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None
