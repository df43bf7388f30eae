"""A Plan: everything a backend needs to run a scenario, resolved and concrete, with no randomness left.

Every node's name, role, group, address, ports and full configuration; the timeline as absolute
times and node names; the checks with their selectors resolved. `to_json()` is canonical (sorted
keys), so the same scenario and seed give the same bytes and the same `digest`.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

Role = Literal["honest", "attacker", "seeder", "bitcoind", "controller"]


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
    allocator: str  # which address strategy assigned the endpoints ("loopback", ...)
    nodes: list[NodePlan]
    timeline: list[Event]
    checks: list[CheckPlan]
    allowlist: list[str]  # networks a node may dial (testbed adaptation 6)
    scenario: dict[str, Any]  # the validated scenario, defaults filled in, for the record

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.model_dump(mode="json"), sort_keys=True, indent=indent, ensure_ascii=False) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Plan:
        return cls.model_validate_json(text)

    @property
    def digest(self) -> str:
        """sha256 of the canonical JSON: names a plan in run records and reports."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()

    def node(self, name: str) -> NodePlan:
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(f"no node named {name!r} in the plan")

    def by_role(self, role: str) -> list[NodePlan]:
        return [node for node in self.nodes if node.role == role]
