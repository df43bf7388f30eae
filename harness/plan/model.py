"""The plan: everything a backend and the controller need to run a scenario, resolved and concrete,
with no randomness left. The one plan model: the planner makes it, `plan.json` in the run directory
holds it, backends, the controller and the checks read it.

Every member's name, role, group, planned (protocol) address, ports and full configuration; the
timeline as absolute times and node names; the checks with their selectors resolved. `to_json()`
is canonical (sorted keys), so the same scenario and seed give the same bytes and the same `digest`.
Planned addresses are the protocol's addresses wherever a node runs: a backend maps them to
reachable endpoints (Backend.transport_for), it never changes them.
"""

from __future__ import annotations

import hashlib
import json
from functools import cached_property
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

Role = Literal["honest", "attacker", "seeder", "bitcoind", "controller"]
HONEST, ATTACKER, SEEDER, CONTROLLER = "honest", "attacker", "seeder", "controller"
BITCOIND = "bitcoind"  # a real bitcoind member, observed through its RPC (docs/bitcoind.md)
NOT_PEERS = (SEEDER, CONTROLLER)  # members that are not P2P nodes


class Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Endpoint(Frozen):
    address: str
    p2p_port: int
    control_port: int

    @property
    def p2p(self) -> str:
        return f"{self.address}:{self.p2p_port}"


class NodePlan(Frozen):
    name: str
    role: Role
    group: str | None
    address: str
    p2p_port: int  # for the seeder: its DNS port
    control_port: int
    config: dict[str, Any]  # what the node process is started with (see planner.node_config)

    @property
    def endpoint(self) -> str:
        """The planned P2P address, as peers name this node."""
        return f"{self.address}:{self.p2p_port}"


class Event(Frozen):
    at: float  # seconds from the start of the run
    action: str  # a name from harness.scenario.actions.ACTIONS
    nodes: list[str]
    params: dict[str, Any]
    phase: Literal["once", "begin", "end"] = "once"  # begin/end: an action with a duration
    source: str  # "faults[2]", "workload.tx", "workload.block"


class CheckPlan(Frozen):
    check: str
    params: dict[str, Any]  # selectors resolved to lists of node names
    source: str  # "expect[0]"


class Plan(Frozen):
    name: str
    seed: int
    duration: float
    allocator: str  # which address layout assigned the planned addresses ("loopback", ...)
    nodes: list[NodePlan]
    timeline: list[Event]
    checks: list[CheckPlan]
    allowlist: list[str]  # networks a node may dial (testbed adaptation 6)
    scenario: dict[str, Any]  # the validated scenario, defaults filled in, for the record

    def to_json(self, indent: int | None = 2) -> str:
        text = json.dumps(self.model_dump(mode="json"), sort_keys=True, indent=indent, ensure_ascii=False) + "\n"
        if indent == 2:
            # the canonical text is at hand: keep its digest (the cached property's slot), so that a
            # backend writing the plan and naming it serialises it once (~1 s at 10,000 nodes)
            self.__dict__.setdefault("digest", _digest(text))
        return text

    @classmethod
    def from_json(cls, text: str) -> Plan:
        return cls.model_validate_json(text)

    @cached_property
    def digest(self) -> str:
        """sha256 of the canonical JSON: names a plan in run records and reports. Kept: the plan is
        frozen, and at 10,000 nodes its JSON takes ~1 s to write."""
        return _digest(self.to_json())

    @cached_property
    def _by_name(self) -> dict[str, NodePlan]:
        return {node.name: node for node in self.nodes}

    def node(self, name: str) -> NodePlan:
        # a dict, not a scan: the collector looks up every node at every poll (a scan of 10,000
        # nodes for each of 10,000 was ~4 s of the harness process every 2 s, benchmarks.md)
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(f"no node named {name!r} in the plan") from None

    def by_role(self, role: str) -> list[NodePlan]:
        return [node for node in self.nodes if node.role == role]

    def peers(self) -> list[NodePlan]:
        """The P2P nodes (honest, attackers, bitcoind): every member but the seeder and the controller."""
        return [node for node in self.nodes if node.role not in NOT_PEERS]

    def names(self, role: str | None = None) -> list[str]:
        """Names of the P2P nodes, or of those of ``role``."""
        return [node.name for node in self.peers() if role is None or node.role == role]

    @property
    def seeder(self) -> NodePlan | None:
        return next((node for node in self.nodes if node.role == SEEDER), None)

    def by_address(self) -> dict[str, NodePlan]:
        """Planned IP -> P2P node: maps a peer address a node reports back to the member's name."""
        return {node.address: node for node in self.peers()}


def _digest(canonical_json: str) -> str:
    return hashlib.sha256(canonical_json.encode()).hexdigest()
