"""Process mechanics of the local backend: how nodes are packed into worker processes, the command
lines of the node host and the seeder (the one place that knows the `harness-node` CLI), spawning
in a fresh process group, and the checks teardown relies on (is a process ours, is a port free).

Linux is assumed where noted (/proc, prctl); elsewhere the checks degrade to kill(pid, 0).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from harness.backends.base import RunState
from harness.plan.model import NodePlan
from harness_node.atomicfile import write_json_atomic

# A worker is one asyncio process; one per core keeps every core busy without context-switch
# churn (more when the descriptor limit demands it: capacity.py). Below this many nodes per worker a second process costs more (interpreter ~40 MB) than
# it brings.
MIN_NODES_PER_WORKER = 50
PR_SET_PDEATHSIG = 1  # linux/prctl.h


@dataclass
class ProcessRecord:
    """One OS process the local backend started, in its own process group (pgid == pid).

    ``start_time`` is the kernel's start time of the process (clock ticks since boot, Linux
    /proc/<pid>/stat field 22), so that teardown never signals a pid the OS has since reused.
    """

    name: str  # worker-0, attack-<attacker>, seeder, controller, node-<name>-<n> (a restarted node)
    kind: str  # worker | attacker | seeder | controller
    pid: int
    pgid: int
    start_time: int | None
    command: list[str]
    log: str
    nodes: list[str] = field(default_factory=list)  # node names it hosts (workers), identities (attackers)
    config: str | None = None


# The local backend's record in RunState.backend_state (no other code reads it):
#   {"processes": [ProcessRecord as dict, ...], "node_hosts": {node: process name}, "attached": bool}

def records(state: RunState) -> list[ProcessRecord]:
    return [ProcessRecord(**p) for p in state.backend_state.get("processes", [])]


def record(state: RunState, name: str) -> ProcessRecord:
    for r in records(state):
        if r.name == name:
            return r
    raise KeyError(name)


def host_of(state: RunState, node: str) -> ProcessRecord:
    """The process hosting ``node`` now (a restart moves it to a process of its own)."""
    return record(state, state.backend_state["node_hosts"][node])


def add_record(state: RunState, rec: ProcessRecord) -> None:
    state.backend_state.setdefault("processes", []).append(asdict(rec))
    hosts = state.backend_state.setdefault("node_hosts", {})
    started = set(state.started_nodes)  # not a list scan per node: 10,000 of them took 2 s
    for node in rec.nodes:
        hosts[node] = rec.name
        if node not in started:
            started.add(node)
            state.started_nodes.append(node)


def partition(nodes: Sequence[NodePlan], workers: int) -> list[list[NodePlan]]:
    """Round-robin, so that every worker gets a share of each role and group (attackers spread)."""
    return [list(nodes[k::workers]) for k in range(workers) if nodes[k::workers]]


def node_host_command(config: Path) -> list[str]:
    return [*_harness_node(), "host", "--config", str(config)]


def attack_command(config: Path) -> list[str]:
    return [*_harness_node(), "attack", "--config", str(config)]


def seeder_command(config: Path) -> list[str]:
    return [*_harness_node(), "seeder", "--config", str(config)]


def bitcoind_command(config: Path) -> list[str]:
    return [*_harness_node(), "bitcoind", str(config)]


def _harness_node() -> list[str]:
    """The `harness-node` entry point of this very interpreter (no reliance on PATH)."""
    script = Path(sys.executable).parent / "harness-node"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from harness_node.cli import main; sys.exit(main())"]


def write_host_config(path: Path, node_configs: list[dict[str, Any]]) -> None:
    """The node host's config file: {"nodes": [node config dict, ...]} (harness_node.config
    .load_host_configs)."""
    # holds the control token; compact, as the C encoder writes it (10,000 nodes' configs indented
    # took 2 s of `up`)
    write_json_atomic(path, {"nodes": node_configs}, mode=0o600)


def _die_with_parent(parent_pid: int) -> None:
    """preexec_fn: ask the kernel to SIGTERM this child when the process that spawned it dies.

    The safety net for `harness run`: if the CLI is SIGKILLed or crashes, its workers get SIGTERM
    and shut down as on a normal teardown. Needs no support from the node host. Linux only.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)


@contextlib.contextmanager
def interrupts_deferred() -> Iterator[None]:
    """Ctrl-C waits until the block is done, then interrupts as usual. Around "start a process and
    record it": a KeyboardInterrupt between the fork and the state write (even inside Popen, while
    it waits for the exec) leaves a process in its own session that no record names, so no teardown
    finds it; seen as a detached controller outliving an interrupted deploy."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers run in the main thread only; nothing to defer here
        return
    pending: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, _frame: pending.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if pending:
            signal.raise_signal(signal.SIGINT)  # the restored handler: KeyboardInterrupt from here


def spawn(
    name: str, kind: str, command: list[str], log: Path, *, watch_parent: bool, nodes: list[str] | None = None,
    config: Path | None = None, env: dict[str, str] | None = None, nice: int = 0,
) -> tuple[subprocess.Popen[bytes], ProcessRecord]:
    """Start ``command`` in a new session (its own process group: teardown signals the group, and
    Ctrl-C in the user's terminal does not reach it; the CLI decides when it stops). A negative
    ``nice`` (a higher CPU priority) is asked for and silently not had without the privilege."""
    preexec = None
    if watch_parent and sys.platform.startswith("linux"):
        parent = os.getpid()
        preexec = lambda: _die_with_parent(parent)  # noqa: E731
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            preexec_fn=preexec, env={**os.environ, **(env or {})}, close_fds=True,
        )
    if nice:
        with contextlib.suppress(OSError):  # EPERM/EACCES without CAP_SYS_NICE
            os.setpriority(os.PRIO_PROCESS, proc.pid, nice)
        set_autogroup_nice(proc.pid, nice)
    record = ProcessRecord(
        name=name, kind=kind, pid=proc.pid, pgid=proc.pid, start_time=process_start_time(proc.pid),
        command=command, log=str(log), nodes=list(nodes or []), config=str(config) if config else None,
    )
    return proc, record


def set_autogroup_nice(pid: int, nice: int) -> bool:
    """Give the session `pid` leads the scheduling weight of `nice` where Linux groups by session
    (sched(7), "autogroup", on by default in most distributions): the scheduler shares the CPU out
    between sessions first, so every member in its own session gets an equal share whatever its
    own nice. The seeder at nice -10 got 1/14 of this machine's 2 cores beside 13 workers (0.15-0.35
    of a core while it crawled 10,000 nodes), and queries waited > 5 s for an answer
    (docs/benchmarks.md, issue 17, nineteenth and twentieth rounds). False where there is no
    autogroup or the privilege is missing (then nothing changes)."""
    try:
        with open(f"/proc/{pid}/autogroup", "w") as f:
            f.write(str(nice))
    except OSError:
        return False
    return True


# --- what is alive --------------------------------------------------------------------------------

def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (index 0 = state), None if gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return raw[raw.rindex(")") + 2:].split()


def process_start_time(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return int(fields[19]) if fields else None  # field 22 of stat = index 19 after the name


def is_ours(record: ProcessRecord) -> bool:
    """The group leader still runs and is the process we started (not a reused pid), or it exited
    but members of its group remain (the kernel never reuses a pid while a group uses it)."""
    if not Path("/proc").is_dir():
        return _pid_exists(record.pid)
    fields = _stat_fields(record.pid)
    if fields is not None and fields[0] != "Z":
        return record.start_time is None or int(fields[19]) == record.start_time
    return bool(live_groups({record.pgid}))


def live_groups(pgids: set[int]) -> dict[int, list[int]]:
    """pgid -> its live (non-zombie) member pids, for the groups in ``pgids`` that have any.
    One scan of /proc for all groups, so teardown of many workers stays cheap."""
    if not Path("/proc").is_dir():
        alive = {}
        for pgid in pgids:
            try:
                os.killpg(pgid, 0)
                alive[pgid] = [pgid]
            except (ProcessLookupError, PermissionError):
                pass
        return alive
    groups: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            fields = _stat_fields(int(entry.name))
            if fields and fields[0] != "Z" and int(fields[3]) in pgids:  # field 5 = pgrp
                groups.setdefault(int(fields[3]), []).append(int(entry.name))
    return groups


def _pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def signal_group(pgid: int, sig: int) -> bool:
    try:
        os.killpg(pgid, sig)
        return True
    except ProcessLookupError:
        return False


def port_is_bound(ip: str, port: int, udp: bool = False) -> bool:
    """Is something still bound to ip:port? SO_REUSEADDR lets a TCP bind ignore TIME_WAIT
    leftovers of closed connections, so only a live listener makes it fail."""
    kind = socket.SOCK_DGRAM if udp else socket.SOCK_STREAM
    with socket.socket(socket.AF_INET6 if ":" in ip else socket.AF_INET, kind) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((ip, port))
        except OSError:
            return True
    return False


def log_tail(path: str | Path, lines: int = 15) -> str:
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"
