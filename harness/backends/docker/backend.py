"""The docker backend: the same plan as containers of one image on a bridge network of the run's own.

One container per node by default (``nodes_per_container`` N packs N nodes into one `harness-node
host` container), each active attacker identity (spam) a `harness-node attack` container of its
own, the seeder in its own; each has a static IP in the run's subnet, and the nodes
keep their planned 127.a.b.c addresses as identities through the transport tables (layout.py).
Every object carries the run's labels (`labels_for`), so `down` removes by label exactly what the
run created, from any shell, even after the CLI that deployed it crashed.

The controller runs as a process on this host (like the local backend's): a container's IP is
reachable from the host, and the controller needs the run directory and, for the native faults,
this backend (the engine's socket), which a container would only get by mounting the socket.
Native faults: stop/restart/kill (the container), pause (docker pause, a real freeze of every
process in it), and network disconnect/reconnect (`partition`/`heal`, a real partition).
"""

from __future__ import annotations

import os
import secrets
import signal
import sys
import time
from collections.abc import Sequence
from typing import Any

from harness.backends.base import (
    STOPPED, Backend, BackendError, DownSummary, MemberStatus, RunState, RunStore, labels_for, ready_timeout,
)
from harness.backends.client import ControlAPIError, ControlClient, call_sync
from harness.backends.docker import bitcoind as btc
from harness.backends.docker import engine, monitor
from harness.backends.docker.layout import (
    Layout, container_attack_config, container_node_config, endpoints_table, layout, subnet_candidates, transport,
)
from harness.backends.endpoint import endpoint_record
from harness.backends.local import processes as lw
from harness.backends.node_config import node_config, seeder_config
from harness.errors import UnknownMember
from harness.plan.model import Plan
from harness.scenario.deploy import Deploy

DEFAULT_IMAGE = "harness-node:latest"
ENV_IMAGE = "HARNESS_IMAGE"
DATADIR = "/var/lib/harness-node"
HOST_CONFIG = f"{engine.CONFIG_DIR}/nodes.json"
ATTACK_CONFIG = f"{engine.CONFIG_DIR}/attack.json"
SEEDER_CONFIG = f"{engine.CONFIG_DIR}/seeder.json"
PAUSED = "paused"
CONTROLLER_GRACE_SECONDS = 10.0
READY_SECONDS_PER_CONTAINER = 3.0  # a budget under a shared, loaded engine; typical starts: docs/benchmarks.md
# A bitcoind member answers only once bitcoind's RPC does (chain and wallet loaded): seconds when
# idle, past a minute on a loaded shared engine.
READY_SECONDS_PER_BITCOIND = 90.0
# While containers boot, two waiters poll (deploy's and the controller's): every round probes each
# pending control API and asks the engine for the run's containers (raise_if_crashed). On 2 cores
# that competes with the booting interpreters; a container boots in seconds, so rounds every 0.5 s
# and a crash check every 2 s cost little latency (docs/benchmarks.md, the Docker backend).
READY_POLL_SECONDS = 0.5
CRASH_CHECK_SECONDS = 2.0


class DockerBackend(Backend):
    name = "docker"
    OPTIONS = frozenset({"image", "nodes_per_container", "bitcoind_path"})
    ready_poll_seconds = READY_POLL_SECONDS

    def __init__(self, run: RunStore, *, image: str | None = None, nodes_per_container: int | None = None,
                 bitcoind_path: str | None = None) -> None:
        """``image``: the node image (default $HARNESS_IMAGE or harness-node:latest; never pulled).
        ``nodes_per_container``: overrides the scenario's deploy.nodes_per_container (benchmarks).
        ``bitcoind_path``: the binary bitcoind members' image gets (bitcoind.py; default as local)."""
        super().__init__(run)
        self.image = image or os.environ.get(ENV_IMAGE) or DEFAULT_IMAGE
        self.nodes_per_container = nodes_per_container
        self.bitcoind_path = bitcoind_path
        self._client: Any = None
        self._crash_checked = float("-inf")  # monotonic time of raise_if_crashed's last engine call
        self.down_phases: dict[str, float] = {}  # seconds per step of the last `down` (bench/bench_docker.py)

    # --- helpers --------------------------------------------------------------------------------
    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = engine.connect()
        return self._client

    def _layout(self, state: RunState | None = None) -> Layout:
        return Layout.from_dict((state or self.state()).backend_state["layout"])

    def _container_name(self, run_id: str, member: str) -> str:
        return f"harness-{run_id}-{member}"

    def _container(self, member: str) -> Any:
        import docker

        state = self.state()
        try:
            return self.client.containers.get(self._container_name(state.run_id, member))
        except docker.errors.NotFound:
            raise UnknownMember(f"no member named {member!r} in run {state.run_id}; `harness status` lists them") from None

    def wait_ready(self, timeout: float | None = None, names: Sequence[str] | None = None) -> None:
        """As the base class, with a budget per container: the engine starts containers a few at a
        time, each an interpreter importing the node (about a second apiece on 2 busy cores)."""
        if timeout is None:
            state = self.state()
            containers = len(self._layout(state).containers) if state.backend_state.get("layout") else 1
            bitcoinds = sum(1 for n in self.plan.peers() if n.role == "bitcoind")
            timeout = (ready_timeout(len(self.plan.peers())) + READY_SECONDS_PER_CONTAINER * containers
                       + READY_SECONDS_PER_BITCOIND * bitcoinds)
        super().wait_ready(timeout, names)

    def transport_for(self, plan: Plan) -> dict[str, dict[str, Any]]:
        return transport(plan, self._layout())

    # --- lifecycle ------------------------------------------------------------------------------
    def up(self, plan: Plan) -> RunState:
        unsupported = sorted({n.role for n in plan.peers()} - {"honest", "attacker", "bitcoind"})
        if unsupported:
            raise BackendError(f"the docker backend cannot run nodes of role(s) {unsupported} yet")
        has_bitcoind = any(n.role == "bitcoind" for n in plan.peers())
        binary = btc.resolve(self.bitcoind_path, plan) if has_bitcoind else ""  # exit 2 before anything starts
        self.run.refuse_foreign()
        if self.run.exists() and self.is_running():
            raise BackendError(f"a run is already deployed in {self.run.path}; run `harness down --run-dir {self.run.path}` first")
        client = self.client  # no engine: fail before anything is written
        timer = engine.Phases(phases := {})  # where up's time goes: state.backend_state["up_phases"], bench_docker.py
        try:
            client.images.get(self.image)
        except Exception:  # noqa: BLE001 - docker.errors.ImageNotFound or an API error: the message says which image
            raise BackendError(f"image {self.image} is not on the Docker engine; build it with `harness image build "
                               f"--tag {self.image}`") from None
        bitcoind_image = btc.ensure_image(client, self.image, binary) if has_bitcoind else ""
        timer.mark("image")
        deploy = Deploy.model_validate(plan.scenario.get("deploy") or {})
        per_container = self.nodes_per_container or deploy.nodes_per_container
        self.run.reset()
        self.run.plan_file.write_text(plan.to_json())
        self._plan = plan
        state = RunState(scenario=plan.name, backend=self.name, plan_digest=plan.digest,
                         control_token=secrets.token_hex(16),
                         backend_state={"image": self.image, "bitcoind_image": bitcoind_image,
                                        "nodes_per_container": per_container,
                                        "limits": {"node": deploy.resources.node.docker_limits(),
                                                   "seeder": deploy.resources.seeder.docker_limits()},
                                        "network": "", "layout": None, "paused": [], "disconnected": []})
        self.run.save_state(state)  # the run id is recorded before anything carries its label
        try:
            net_name = f"harness-{state.run_id}"
            _, subnet = engine.create_network(client, net_name, subnet_candidates(state.run_id),
                                              labels_for(state.run_id, "network", "network", plan.name))
            timer.mark("network")
            lay = layout(plan, subnet, per_container)
            state.backend_state.update(network=net_name, layout=lay.to_dict())
            state.endpoints = self._endpoints(plan, lay)
            self.run.save_state(state)
            specs = [self._spec(state, plan, lay, c) for c in lay.containers]
            timer.mark("layout")
            engine.parallel(lambda s: engine.create_and_start(client, s), specs)
            timer.mark("containers")
            state.started_nodes = [n.name for n in plan.peers()]
            state.backend_state["up_phases"] = {k: round(v, 3) for k, v in phases.items()}
            self.run.save_state(state)
        except BaseException:
            self.down()
            raise
        return state

    @staticmethod
    def _endpoints(plan: Plan, lay: Layout) -> dict[str, dict[str, Any]]:
        members = [*plan.peers(), *([plan.seeder] if plan.seeder else [])]
        out = {}
        for n in members:
            ip, p2p, control = lay.endpoint(n.name)
            out[n.name] = endpoint_record(ip, p2p, f"http://{ip}:{control}")
        return out

    def _spec(self, state: RunState, plan: Plan, lay: Layout, c: Any) -> dict[str, Any]:
        token = state.control_token or ""
        if c.kind == "seeder":
            assert plan.seeder is not None
            config = seeder_config(plan.seeder, token)
            config.update(dns_host=c.ip, control_host=c.ip, endpoints=endpoints_table(plan, lay))
            files, command = {"seeder.json": config}, ["seeder", "--config", SEEDER_CONFIG]
            role = "seeder"
        elif c.kind == "bitcoind":
            config = btc.member_config(plan.node(c.member), plan, lay, f"{DATADIR}/{c.member}", token)
            files, command = {"bitcoind.json": config}, ["bitcoind", f"{engine.CONFIG_DIR}/bitcoind.json"]
            role = "bitcoind"
        elif c.kind == "attacker":  # one `harness-node attack` identity, the image's same entry point
            files = {"attack.json": container_attack_config(plan, lay, c.member, token)}
            command = ["attack", "--config", ATTACK_CONFIG]
            role = "attacker"
        else:
            tables = transport(plan, lay)
            configs = [container_node_config(node_config(plan.node(n), f"{DATADIR}/{n}", token, tables[n]),
                                             plan.node(n), plan, lay) for n in c.nodes]
            files, command = {"nodes.json": {"nodes": configs}}, ["host", "--config", HOST_CONFIG]
            role = plan.node(c.nodes[0]).role if len(c.nodes) == 1 else "node-pack"
        image = state.backend_state["bitcoind_image"] if c.kind == "bitcoind" else state.backend_state["image"]
        return {"image": image, "name": self._container_name(state.run_id, c.member),
                "command": command, "labels": labels_for(state.run_id, c.member, role, plan.name),
                "network": state.backend_state["network"], "ip": c.ip, "files": files,
                # deploy.resources.node is sized for light nodes; bitcoind alone needs ~150 MiB on regtest
                "limits": {} if c.kind == "bitcoind" else state.backend_state["limits"]["seeder" if c.kind == "seeder" else "node"]}

    def start_controller(self, argv: Sequence[str]) -> None:
        """The controller as a process on this host, recorded in the state so `down` stops it."""
        with self.run.locked():
            state = self.state()
            with lw.interrupts_deferred():  # started => recorded, so that `down` finds it
                proc, rec = lw.spawn("controller", "controller", [sys.executable, *argv],
                                     self.run.logs_dir / "controller.log", watch_parent=False)
                state.backend_state["controller"] = rec.__dict__
                self.run.save_state(state)

    def _controller(self, state: RunState) -> lw.ProcessRecord | None:
        rec = state.backend_state.get("controller")
        return lw.ProcessRecord(**rec) if rec else None

    def raise_if_crashed(self) -> None:
        if time.monotonic() - self._crash_checked < CRASH_CHECK_SECONDS:
            return
        self._crash_checked = time.monotonic()
        state = self.state()
        if not state.backend_state.get("layout"):
            return
        want = {c.member for c in self._layout(state).containers}
        stopped = set(state.stopped_nodes)
        for c in engine.run_containers(self.client, state.run_id):
            if c.member in want and c.member not in stopped and c.status in ("exited", "dead"):
                if c.member in self.state().stopped_nodes:  # stopped after the read above: on purpose
                    continue
                tail = self.client.api.logs(c.id, tail=15).decode(errors="replace")
                raise BackendError(f"container {c.name} exited during start-up; its last lines:\n{tail}")

    def down(self) -> DownSummary:
        started = time.monotonic()
        if not self.run.exists():
            return DownSummary(already_down=True, seconds=0.0)
        with self.run.locked():
            state = self.state()
            ctl = self._controller(state)
            stopped_ctl = forced_ctl = 0
            phases = self.down_phases = {}
            if ctl and lw.is_ours(ctl):  # first: its timeline must not start a container meanwhile
                stopped_ctl = 1
                forced_ctl = int(not _stop_group(ctl.pgid))
            phases["controller"] = time.monotonic() - started
            removed, forced, left = engine.remove_run(self.client, state.run_id, phases)
            already = not any(removed.values()) and not stopped_ctl and state.status == STOPPED
            state.status, state.stopped_at = STOPPED, state.stopped_at if already else time.time()
            self.run.save_state(state)
        removed["process"], forced["process"] = stopped_ctl, forced_ctl
        return DownSummary(already_down=already, seconds=time.monotonic() - started, removed=removed,
                           forced=forced, left=left)

    def is_running(self) -> bool:
        if not self.run.exists():
            return False
        state = self.state()
        if state.status == STOPPED:
            return False
        return any(c.status in ("running", "paused") for c in engine.run_containers(self.client, state.run_id))

    def members(self) -> list[MemberStatus]:
        state = self.state()
        out = []
        if state.backend_state.get("layout"):
            containers = {c.member: c for c in engine.run_containers(self.client, state.run_id)}
            for spec in self._layout(state).containers:
                c = containers.get(spec.member)
                kind = spec.kind if spec.kind in ("seeder", "attacker") else "container"
                out.append(MemberStatus(spec.member, kind, len(spec.nodes),
                                        bool(c and c.status in ("running", "paused")), f"docker logs {c.name}" if c else ""))
        ctl = self._controller(state)
        if ctl:
            out.append(MemberStatus("controller", "controller", 0, lw.is_ours(ctl), ctl.log))
        return out

    def logs(self, member: str) -> str:
        state = self.state()
        ctl = self._controller(state)
        if member == "controller" and ctl:
            return lw.log_tail(ctl.log, lines=10**9)
        return self._container(member).logs().decode(errors="replace")

    # --- faults ---------------------------------------------------------------------------------
    def _alone(self, name: str) -> Any | None:
        """The container of ``name`` if it hosts only that node (native faults act on it)."""
        c = self._layout().container_of(name)
        return self._container(c.member) if len(c.nodes) == 1 else None

    def _call(self, name: str, fn: Any) -> None:
        ep = self.node_endpoints()[name]
        call_sync(self.state().control_token, lambda c: fn(c, ep))

    def _mark(self, key: str, name: str, on: bool) -> None:
        with self.run.locked():
            state = self.state()
            names = state.stopped_nodes if key == "stopped" else state.backend_state.setdefault(key, [])
            if on and name not in names:
                names.append(name)
            elif not on and name in names:
                names.remove(name)
            self.run.save_state(state)

    def pause_node(self, name: str) -> None:
        """docker pause: every process of the container frozen (cgroup freezer), sockets open and
        silent, like a hung machine. A packed node is paused through its control API instead."""
        container = self._alone(name)
        if container is None:
            self._call(name, ControlClient.pause)
        else:
            engine.pause(container)
        self._mark(PAUSED, name, True)

    def resume_node(self, name: str) -> None:
        container = self._alone(name)
        if container is None:
            self._call(name, ControlClient.resume)
        else:
            container.unpause()
        self._mark(PAUSED, name, False)

    def stop_node(self, name: str) -> None:
        if name in self.state().stopped_nodes:
            return
        container = self._alone(name)
        # Recorded before the container goes: a concurrent restart's wait_ready (raise_if_crashed)
        # must not take this node's exit for a crash.
        self._mark("stopped", name, True)
        if container is None:
            try:
                self._call(name, ControlClient.shutdown)
            except ControlAPIError:
                pass  # a node that shuts down may drop the connection before answering
        else:
            container.stop(timeout=engine.STOP_TIMEOUT_SECONDS)

    def kill_node(self, name: str) -> None:
        """SIGKILL the node's container: no clean shutdown, as a crash."""
        container = self._alone(name)
        if container is None:
            raise BackendError(f"{name} shares its container with other nodes (nodes_per_container > 1): "
                               f"it cannot be killed alone; use stop_node")
        self._mark("stopped", name, True)  # first, as in stop_node
        container.kill()

    def restart_node(self, name: str, wipe_datadir: bool = False) -> None:
        """Start the node's container again (same IP, ports, config and datadir; ``wipe_datadir``
        empties the datadir first). Only for a node alone in its container."""
        container = self._alone(name)
        if container is None:
            raise BackendError(f"{name} shares its container with other nodes (nodes_per_container > 1): "
                               f"restarting it alone is not supported; deploy with nodes_per_container 1")
        if name not in self.state().stopped_nodes:
            container.stop(timeout=engine.STOP_TIMEOUT_SECONDS)
        if wipe_datadir:
            # a fresh container from the same spec (name, IP, config): its datadir starts empty
            state, lay = self.state(), self._layout()
            spec = self._spec(state, self.plan, lay, lay.container_of(name))
            container.remove(force=True)
            engine.start(self.client, engine.create_container(self.client, **spec))
        else:
            container.start()
        self._mark("stopped", name, False)
        self.wait_ready(names=[name])

    def partition(self, groups: Sequence[Sequence[str]], one_way: bool = False) -> None:
        """A real partition: the nodes of every group after the first are disconnected from the
        run's network (each then reaches nobody), the first group keeps it. `heal` reconnects them
        at the same IPs. Only nodes alone in their container. A network disconnect cuts both
        directions, so ``one_way`` is refused (the timeline then uses the node-level fault)."""
        if one_way:
            raise BackendError("the docker backend cannot cut one direction only (a network disconnect "
                               "cuts both); use the node-level partition fault")
        isolated = [n for group in list(groups)[1:] for n in group]
        net = self.client.networks.get(self.state().backend_state["network"])
        for name in isolated:
            container = self._alone(name)
            if container is None:
                raise BackendError(f"{name} shares its container with other nodes: a network partition of it "
                                   f"alone is not possible; use the node-level partition fault")
            net.disconnect(container, force=True)
            self._mark("disconnected", name, True)

    def heal(self) -> None:
        state = self.state()
        net = self.client.networks.get(state.backend_state["network"])
        lay = self._layout(state)
        for name in list(state.backend_state.get("disconnected", [])):
            c = lay.container_of(name)
            net.connect(self._container(c.member), ipv4_address=c.ip)
            self._mark("disconnected", name, False)

    def check_monitor(self, prometheus_image: str | None = None, grafana_image: str | None = None) -> None:
        """The images are pulled (or refused, naming `harness image build --prometheus`) when started."""

    def start_monitor(self, prometheus_image: str | None = None,
                      grafana_image: str | None = monitor.GRAFANA_IMAGE) -> dict[str, str]:
        """Prometheus scraping every node, the seeder and the controller, and Grafana unless
        ``grafana_image`` is None or empty (monitor.py); `update_monitor` adds the controller when
        it starts serving after Prometheus (`harness run`)."""
        state = self.state()
        subnet = self._layout(state).subnet
        engine.run_aux(self.client, name=self._container_name(state.run_id, "prometheus"),
                       labels=labels_for(state.run_id, "prometheus", "monitoring", self.plan.name),
                       files={"prometheus.yml": self._prometheus_config(state)},
                       directory="/etc/prometheus",
                       **monitor.prometheus_spec(prometheus_image or monitor.PROMETHEUS_IMAGE, subnet))
        if grafana_image:
            engine.run_aux(self.client, name=self._container_name(state.run_id, "grafana"),
                           labels=labels_for(state.run_id, "grafana", "monitoring", self.plan.name),
                           network=state.backend_state["network"], ip=monitor.grafana_ip(subnet),
                           **monitor.grafana_spec(grafana_image, subnet))
        urls = monitor.urls(subnet, bool(grafana_image))
        with self.run.locked():
            state = self.state()
            state.backend_state["monitoring"] = urls
            state.backend_state["monitoring_controller"] = state.controller_url
            state.monitor_url = urls["prometheus"]
            self.run.save_state(state)
        return urls

    def _prometheus_config(self, state: RunState) -> str:
        static = monitor.targets(self.plan, state.endpoints, state.controller_url)
        return monitor.prometheus_config(state.run_id, static)

    def update_monitor(self) -> None:
        """The targets are the containers' fixed IPs; only the controller's URL can appear later:
        then rewrite the configuration and have Prometheus reload it (SIGHUP)."""
        with self.run.locked():
            state = self.state()
            if state.monitor_url is None or state.backend_state.get("monitoring_controller") == state.controller_url:
                return
            container = self._container("prometheus")
            container.put_archive("/etc/prometheus", engine.archive({"prometheus.yml": self._prometheus_config(state).encode()}, 0o644))
            container.kill(signal="SIGHUP")
            state.backend_state["monitoring_controller"] = state.controller_url
            self.run.save_state(state)


def _stop_group(pgid: int) -> bool:
    """SIGTERM a process group (the controller), SIGKILL after the grace; True if it went on TERM."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        lw.signal_group(pgid, sig)
        deadline = time.monotonic() + CONTROLLER_GRACE_SECONDS
        while lw.live_groups({pgid}):
            if time.monotonic() > deadline:
                break
            time.sleep(0.05)
        else:
            return sig == signal.SIGTERM
    return False
