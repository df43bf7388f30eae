"""The small interface every backend (local processes, Docker, Kubernetes) implements.

A backend is bound to one run directory. It turns a PlanView into running nodes and takes them
down again; everything above it (controller, runner, CLI) talks to nodes through their control
APIs at the endpoints the backend reports, so it never needs to know which backend runs them.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from harness.errors import ExitCode, HarnessError
from harness.plan.view import PlanView
from harness.run.rundir import RunDir, RunState


class BackendError(HarnessError):
    """The network could not be started, reached or changed (a crash, a timeout, a port in use).
    Exit code 1 like failed checks: errors.ExitCode has no separate "run failed" code yet."""

    exit_code = ExitCode.CHECKS_FAILED


class AddressesInUse(BackendError):
    """The planned addresses are taken (another run?): nothing was started."""

    exit_code = ExitCode.INVALID_INPUT


@dataclass(frozen=True)
class Endpoint:
    """Where a node's (or the seeder's) P2P and control services answer, as seen from this host."""

    name: str
    address: str
    port: int
    control_url: str

    @property
    def p2p(self) -> str:
        return f"{self.address}:{self.port}"


@dataclass(frozen=True)
class DownSummary:
    """What teardown did. ``leftover_processes``/``bound_ports`` empty means nothing is left behind."""

    already_down: bool
    terminated: int  # process groups that exited on SIGTERM
    killed: int  # process groups that needed SIGKILL
    seconds: float
    leftover_processes: tuple[int, ...] = ()
    bound_ports: tuple[str, ...] = ()

    @property
    def clean(self) -> bool:
        return not self.leftover_processes and not self.bound_ports

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "clean": self.clean}


class Backend(abc.ABC):
    name: str = ""

    def __init__(self, run: RunDir) -> None:
        self.run = run

    @abc.abstractmethod
    def up(self, plan: PlanView, *, watch_parent: bool = False) -> RunState:
        """Start every node (and the seeder). Returns once the processes exist, not once ready.

        ``watch_parent``: the nodes die with this process (the `run` command); otherwise they are
        detached and live until `down` (the `deploy` command).
        """

    @abc.abstractmethod
    def wait_ready(self, timeout: float | None = None) -> None:
        """Block until every node's control API answers; raise HarnessError on timeout or a crash."""

    @abc.abstractmethod
    def down(self) -> DownSummary:
        """Stop everything of this run. Idempotent: nothing running is fine."""

    @abc.abstractmethod
    def is_running(self) -> bool: ...

    @abc.abstractmethod
    def node_endpoints(self) -> dict[str, Endpoint]: ...

    @abc.abstractmethod
    def seeder_endpoint(self) -> Endpoint | None: ...

    @abc.abstractmethod
    def stop_node(self, name: str) -> None: ...

    @abc.abstractmethod
    def pause_node(self, name: str) -> None: ...

    @abc.abstractmethod
    def resume_node(self, name: str) -> None: ...

    @abc.abstractmethod
    def restart_node(self, name: str, wipe_datadir: bool = False) -> None: ...

    def replace_seeder(self, rogue_addresses: Sequence[str] | None) -> None:
        """Stop whichever seeder runs and start, on the same address and ports, a rogue seeder
        serving only ``rogue_addresses`` (IPs; no crawler, mode poison), or the planned honest
        seeder again when None. Returns once the new one answers; `down` stops whichever runs."""
        raise BackendError(f"the {self.name} backend cannot replace the seeder yet")

    @abc.abstractmethod
    def process_status(self) -> list[dict[str, Any]]:
        """One dict per backend process/container: name, kind, pid (or id), alive."""
