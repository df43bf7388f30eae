"""The contract every backend (local processes, Docker, Kubernetes) implements.

A backend is bound to one run store (the run directory). It places a plan's members (nodes, the
DNS seeder, the controller) somewhere, reports where each answers, acts on members, and removes
everything of the run again. Everything above it (controller, runner, CLI) talks to nodes through
their control APIs at the endpoints the backend reports, so nothing above knows how or where they
run. Nothing here names a process: what a backend needs to find its members again (pids, container
ids, pod names) lives in its own opaque record, ``RunState.backend_state``.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import json
import secrets
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Protocol

from harness.backends.client import ControlAPIError, ControlClient
from harness.backends.endpoint import Endpoint
from harness.backends.funding import fund_wallets
from harness.errors import AddressesInUse, BackendError, MonitorUnavailable
from harness.plan.model import BITCOIND, Plan

__all__ = ["AddressesInUse", "Backend", "BackendError", "DownSummary", "Endpoint", "MemberStatus", "RunState",
           "RunStore", "labels_for", "new_run_id"]

# Lifecycle of a run as recorded in the run state.
DEPLOYING, RUNNING, STOPPED = "deploying", "running", "stopped"

READY_TIMEOUT_BASE_SECONDS = 30.0  # interpreter or container start + imports of the first member
READY_TIMEOUT_PER_NODE_SECONDS = 0.05  # 1,000 nodes: +50 s
READY_POLL_SECONDS = 0.2
READY_PROBE_TIMEOUT_SECONDS = 2.0  # the first round's; doubled each round up to the next constant
READY_PROBE_MAX_SECONDS = 30.0  # a worker forming a 10,000-node network answers seconds late, yet is up

LABEL_PREFIX = "harness.io"


def ready_timeout(nodes: int) -> float:
    return READY_TIMEOUT_BASE_SECONDS + READY_TIMEOUT_PER_NODE_SECONDS * nodes


def new_run_id() -> str:
    """Short and random: names every container, pod and label of one run, so two runs (even of the
    same scenario) never select each other's members."""
    return secrets.token_hex(4)


def labels_for(run_id: str, member: str, role: str, scenario: str = "") -> dict[str, str]:
    """The labels a backend stamps on everything it creates for ``member`` of run ``run_id``
    (Docker labels, Kubernetes metadata.labels), so that `down` selects by run and nothing else.
    Pure: the same arguments always give the same labels; values are valid Kubernetes label values
    for the names the planner makes."""
    labels = {
        f"{LABEL_PREFIX}/run": run_id,
        f"{LABEL_PREFIX}/member": member,
        f"{LABEL_PREFIX}/role": role,
        "app.kubernetes.io/name": "harness-node" if role in ("honest", "attacker", "seeder") else f"harness-{role}",
        "app.kubernetes.io/instance": f"harness-{run_id}",
        "app.kubernetes.io/component": role,
        "app.kubernetes.io/managed-by": "harness",
    }
    if scenario:
        labels[f"{LABEL_PREFIX}/scenario"] = scenario[:63]
    return labels


@dataclass
class RunState:
    """What every shell needs to find a run again. Backend-neutral: what a backend needs to find
    its members (pids, container ids, ...) is in ``backend_state``, which only that backend reads."""

    scenario: str
    backend: str
    plan_digest: str
    run_id: str = field(default_factory=new_run_id)
    status: str = DEPLOYING
    created_at: float = field(default_factory=time.time)
    ready_at: float | None = None
    stopped_at: float | None = None
    control_token: str | None = None
    controller_url: str | None = None
    monitor_url: str | None = None  # the run's Prometheus (`--monitor`), where the backend placed one
    # member name -> {"p2p": "host:port", "control_url": "http://..."}: reported by the backend
    endpoints: dict[str, dict[str, Any]] = field(default_factory=dict)
    started_nodes: list[str] = field(default_factory=list)  # nodes whose member has been started
    stopped_nodes: list[str] = field(default_factory=list)
    backend_state: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        """The state file's text: compact (json's C encoder; an indent takes the pure-Python one) and
        without asdict's deep copy. The local backend saves the state once per process it starts,
        14 times for 10,000 nodes: indented and deep-copied, those saves were most of `up`'s 13 s
        (docs/benchmarks.md, issue 17, twenty-fourth round)."""
        return json.dumps({f.name: getattr(self, f.name) for f in fields(self)})

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RunState":
        return cls(**data)


class RunStore(Protocol):
    """What a backend and the controller need from the run directory (harness.run.rundir.RunDir
    implements it): where files go, the state, the plan, and a lock around read-modify-write."""

    path: Path

    @property
    def plan_file(self) -> Path: ...
    @property
    def results_file(self) -> Path: ...
    @property
    def workers_dir(self) -> Path: ...
    @property
    def logs_dir(self) -> Path: ...
    def datadir(self, node: str) -> Path: ...
    def create(self) -> None: ...
    def exists(self) -> bool: ...
    def load_state(self) -> RunState: ...
    def save_state(self, state: RunState) -> None: ...
    def locked(self) -> contextlib.AbstractContextManager[None]: ...
    def write_json(self, path: Path, data: Any, mode: int = 0o644) -> None: ...
    def read_json(self, path: Path) -> Any: ...
    def append_journal(self, entry: dict[str, Any]) -> None: ...
    def read_journal(self, type_: str | None = None) -> list[dict[str, Any]]: ...


@dataclass(frozen=True)
class MemberStatus:
    """One thing the backend runs (a process, a container, a pod) as the status view shows it."""

    name: str
    kind: str  # worker | seeder | controller | node (a restarted node alone) ...
    nodes: int  # planned nodes it hosts
    alive: bool
    log: str = ""  # where `logs(name)` reads from, for people

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class DownSummary:
    """What teardown removed, by kind (``{"process": 5}`` locally; containers, networks, volumes on
    Docker), and what is left: ``left`` (kind -> ids still there) and ``bound_ports``. ``clean``
    means nothing of the run is left."""

    already_down: bool
    seconds: float
    removed: dict[str, int] = field(default_factory=dict)
    forced: dict[str, int] = field(default_factory=dict)  # of those, how many needed force (SIGKILL, rm -f)
    left: dict[str, list[str]] = field(default_factory=dict)
    bound_ports: tuple[str, ...] = ()

    @property
    def clean(self) -> bool:
        return not any(self.left.values()) and not self.bound_ports

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "clean": self.clean}


class Backend(abc.ABC):
    name: str = ""
    OPTIONS: frozenset[str] = frozenset()  # keyword options of __init__ that make_backend passes on
    ready_poll_seconds: float = READY_POLL_SECONDS  # between wait_ready's rounds of GET /status

    def __init__(self, run: RunStore) -> None:
        self.run = run
        self._plan: Plan | None = None

    @property
    def plan(self) -> Plan:
        """The plan this run was deployed from (never re-planned)."""
        if self._plan is None:
            self._plan = Plan.model_validate(self.run.read_json(self.run.plan_file))  # RunDirError if missing
        return self._plan

    def state(self) -> RunState:
        return self.run.load_state()

    # --- placing the plan -----------------------------------------------------------------------
    @abc.abstractmethod
    def up(self, plan: Plan) -> RunState:
        """Start every node and the seeder (not the controller: `start_controller`). Returns once
        they exist, not once ready. Writes the plan and the state before starting anything, so that
        `down` from any shell finds what started."""

    @abc.abstractmethod
    def start_controller(self, argv: Sequence[str]) -> None:
        """Place the controller: ``argv`` is its command after the Python interpreter
        (``-m harness.run.detached --run-dir DIR``). A process here, a container or pod elsewhere;
        `down` removes it with everything else. The controller records its URL in the state."""

    def transport_for(self, plan: Plan) -> dict[str, dict[str, Any]]:
        """Per planned node, the config fields mapping planned (protocol) addresses to where they
        are reachable: ``endpoints`` {planned_ip: "host:port"} to dial and ``inbound_hosts``
        {transport_ip: [planned_ip, ...]} to attribute an inbound connection. Empty means identity:
        every node is reachable at its planned address (the local backend)."""
        return {}

    def wait_ready(self, timeout: float | None = None, names: Sequence[str] | None = None) -> None:
        """Block until every running node and the seeder (or only the nodes ``names``) answer
        GET /status; raise BackendError on timeout or when a member dies meanwhile."""
        state = self.state()
        endpoints = self.node_endpoints()
        if names is None:
            targets = [ep for n, ep in endpoints.items() if n not in state.stopped_nodes]
            seeder = self.seeder_endpoint()
            targets += [seeder] if seeder else []
        else:
            targets = [endpoints[n] for n in names]
        asyncio.run(self._poll_ready(state, targets, timeout if timeout is not None else ready_timeout(len(targets))))
        if state.status == DEPLOYING and names is None:
            # part of being ready: a payment from any of them reaches every bitcoind (funding.py)
            bitcoinds = [endpoints[n.name] for n in self.plan.peers() if n.role == BITCOIND and n.name in endpoints
                         and n.name not in state.stopped_nodes]
            if bitcoinds:
                asyncio.run(self._fund(state, bitcoinds))
        if state.status == DEPLOYING:
            with self.run.locked():
                state = self.state()
                state.status, state.ready_at = RUNNING, time.time()
                self.run.save_state(state)

    async def _fund(self, state: RunState, bitcoinds: list[Endpoint]) -> None:
        async with ControlClient(state.control_token) as client:
            await fund_wallets(client, bitcoinds)

    async def _poll_ready(self, state: RunState, targets: list[Endpoint], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        pending = {ep.name: ep for ep in targets}
        probe = READY_PROBE_TIMEOUT_SECONDS
        async with ControlClient(state.control_token, timeout=READY_PROBE_TIMEOUT_SECONDS, retries=0) as client:
            client.place(self.host_groups())
            while True:
                self.raise_if_crashed()
                left = max(0.1, deadline - time.monotonic())
                wait = min(probe, left)
                # each host process once for all its nodes (GET /host/ready), a member without that
                # route (a bitcoind's supervisor, the seeder) on its own, with peer counts only: one
                # GET /status per node was 10,000 HTTP requests a round to workers busy forming
                # their graph (docs/benchmarks.md, issue 17, nineteenth round). A host's answer gets
                # the longest probe at once: when it times out, its nodes are asked one by one
                results = await client.per_host(
                    list(pending.values()), "/host/ready", lambda ep: client.request(
                        ep, "GET", "/status?peers=counts", retries=0, timeout=wait),
                    host_timeout=min(READY_PROBE_MAX_SECONDS, left))
                pending = {n: pending[n] for n, r in results.items() if isinstance(r, ControlAPIError)}
                # a member whose loop runs seconds behind is up, only late: ask it with more patience
                # (mainnet-scale.yaml: 483 of 10,000 nodes never answered a 2 s probe in 530 s)
                probe = min(probe * 2, READY_PROBE_MAX_SECONDS)
                if not pending:
                    return
                if time.monotonic() > deadline:
                    first = next(iter(pending))
                    raise BackendError(
                        f"{len(pending)} of {len(targets)} nodes not ready after {timeout:.0f} s "
                        f"(first: {first}: {results[first].reason}); see `harness status` and the members' logs"
                    )
                await asyncio.sleep(self.ready_poll_seconds)

    def raise_if_crashed(self) -> None:
        """Raise BackendError (with the log tail) if a member that should run has exited."""

    @abc.abstractmethod
    def down(self) -> DownSummary:
        """Remove everything of this run (nodes, seeder, controller). Idempotent."""

    # --- what runs where ------------------------------------------------------------------------
    @abc.abstractmethod
    def is_running(self) -> bool: ...

    @abc.abstractmethod
    def members(self) -> list[MemberStatus]:
        """Every member the run has started, alive or not, as the backend sees it."""

    @abc.abstractmethod
    def logs(self, member: str) -> str:
        """The log of ``member`` (a name from `members`)."""

    def node_endpoints(self) -> dict[str, Endpoint]:
        """Every planned node's endpoints, as recorded by `up` (``RunState.endpoints``)."""
        recorded = self.state().endpoints
        return {n.name: _endpoint(n.name, recorded[n.name]) for n in self.plan.peers() if n.name in recorded}

    def host_groups(self) -> list[list[str]]:
        """The node names each host process serves together (one control site, `GET /host/...`),
        for a control client to ask each process once from its first round (`ControlClient.place`).
        [] where every node is a process of its own (a container, a pod)."""
        return []

    def seeder_endpoint(self) -> Endpoint | None:
        seeder = self.plan.seeder
        if seeder is None:
            return None
        recorded = self.state().endpoints.get(seeder.name)
        return _endpoint(seeder.name, recorded) if recorded else None

    # --- acting on members ----------------------------------------------------------------------
    @abc.abstractmethod
    def stop_node(self, name: str) -> None: ...

    @abc.abstractmethod
    def pause_node(self, name: str) -> None: ...

    @abc.abstractmethod
    def resume_node(self, name: str) -> None: ...

    @abc.abstractmethod
    def restart_node(self, name: str, wipe_datadir: bool = False) -> None: ...

    def partition(self, groups: Sequence[Sequence[str]], one_way: bool = False) -> None:
        """Cut the network between ``groups`` of node names with the backend's own means (Docker:
        network disconnect); `heal` undoes it. ``one_way``: only the first group is cut off from
        the others (its messages to them are lost, theirs still arrive); a backend that cannot do
        that refuses. Optional: the timeline asks only for a partition with ``native: true`` and falls back to
        the node-level one (docs/chaos.md), which every backend has, when this refuses."""
        raise BackendError(f"the {self.name} backend has no native network partition")

    def heal(self) -> None:
        raise BackendError(f"the {self.name} backend has no native network partition")

    # --- monitoring (`--monitor`): a Prometheus scraping this run, placed like any other member ----
    # Options (the runner's ``monitor`` dict, the CLI's --prom-image/--graf-image): ``prometheus_image``
    # and ``grafana_image`` (None or empty: no Grafana) for backends that run images; a backend that
    # runs Prometheus otherwise (local: the binary on PATH) ignores them.
    def check_monitor(self, prometheus_image: str | None = None, grafana_image: str | None = None) -> None:
        """Raise MonitorUnavailable (exit 2) if `start_monitor` cannot work here; called before `up`,
        so that nothing starts."""
        raise MonitorUnavailable(f"the {self.name} backend cannot start Prometheus (--monitor) yet")

    def start_monitor(self, prometheus_image: str | None = None, grafana_image: str | None = None) -> dict[str, str]:
        """Start a Prometheus scraping every node, the seeder and the controller (and Grafana with
        the repository's dashboards where the backend can), record the Prometheus URL as the state's
        `monitor_url`, return the URLs by name ("prometheus", "grafana"); `down` removes them."""
        raise MonitorUnavailable(f"the {self.name} backend cannot start Prometheus (--monitor) yet")

    def update_monitor(self) -> None:
        """Bring the monitor's targets in step with the state (a node stopped or restarted, the
        seeder replaced, the controller's URL recorded). Nothing when the run is not monitored."""

    def replace_seeder(self, rogue_addresses: Sequence[str] | None) -> None:
        """Stop whichever seeder runs and start, on the same address and ports, a rogue seeder
        serving only ``rogue_addresses`` (IPs; no crawler, mode poison), or the planned honest
        seeder again when None. Returns once the new one answers; `down` removes whichever runs."""
        raise BackendError(f"the {self.name} backend cannot replace the seeder yet")


def _endpoint(name: str, record: dict[str, Any]) -> Endpoint:
    address, _, port = str(record["p2p"]).rpartition(":")
    return Endpoint(name, address, int(port), str(record["control_url"]))
