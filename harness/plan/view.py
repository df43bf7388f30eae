"""Adapter from the planner's Plan to what backends and the controller need: the one place that
knows the planner's field names.

A PlanView is plain JSON-able data, saved in the run directory (plan.json) so that status, inject,
report, down and the controller process work from another shell without re-planning.

Reads harness.plan.model.Plan: nodes (NodePlan: name, role, group, address, p2p_port,
control_port, config), the seeder as the node of role "seeder" (p2p_port = its DNS port), the
timeline (Event: at, action, nodes, params, phase once/begin/end) and the checks (CheckPlan).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HONEST, ATTACKER = "honest", "attacker"


@dataclass(frozen=True)
class NodeSpec:
    name: str
    role: str  # honest | attacker (attacker kinds in `group`)
    group: str
    address: str  # the node's own IP (local backend: a 127.a.b.c)
    port: int
    control_port: int
    config: dict[str, Any]  # passed verbatim to the node host, plus backend-owned keys

    @property
    def endpoint(self) -> str:
        return f"{self.address}:{self.port}"


@dataclass(frozen=True)
class SeederSpec:
    name: str
    address: str
    port: int
    control_port: int
    config: dict[str, Any]


@dataclass(frozen=True)
class Event:
    at: float
    action: str
    targets: tuple[str, ...]
    params: dict[str, Any] = field(default_factory=dict)
    phase: str = "once"  # once | begin | end (an action with a duration is a begin/end pair)


@dataclass(frozen=True)
class Expectation:
    check: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PlanView:
    scenario: str
    seed: int
    digest: str
    duration: float
    nodes: tuple[NodeSpec, ...]
    seeder: SeederSpec | None = None
    timeline: tuple[Event, ...] = ()
    expect: tuple[Expectation, ...] = ()

    def node(self, name: str) -> NodeSpec:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    def names(self, role: str | None = None) -> list[str]:
        return [n.name for n in self.nodes if role is None or n.role == role]

    def by_address(self) -> dict[str, NodeSpec]:
        """IP -> node: maps a peer address a node reports back to the harness name."""
        return {n.address: n for n in self.nodes}

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "PlanView":
        seeder = d.get("seeder")
        return cls(
            scenario=d["scenario"],
            seed=int(d["seed"]),
            digest=d["digest"],
            duration=float(d.get("duration") or 0.0),
            nodes=tuple(NodeSpec(**n) for n in d["nodes"]),
            seeder=SeederSpec(**seeder) if seeder else None,
            timeline=tuple(Event(e["at"], e["action"], tuple(e["targets"]), dict(e.get("params") or {}), e.get("phase", "once"))
                           for e in d.get("timeline", ())),
            expect=tuple(Expectation(x["check"], dict(x.get("params") or {})) for x in d.get("expect", ())),
        )


def digest_of(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _as_dict(obj: Any) -> dict[str, Any]:
    if isinstance(obj, Mapping):
        return dict(obj)
    if hasattr(obj, "model_dump"):
        return obj.model_dump(mode="json")
    if dataclasses.is_dataclass(obj):
        return dataclasses.asdict(obj)
    raise TypeError(f"cannot read a plan from {type(obj).__name__}")


def _expectations(raw: Iterable[Any]) -> tuple[Expectation, ...]:
    return tuple(Expectation(str(c["check"]), dict(c.get("params") or {})) for c in map(_as_dict, raw or ()))


# The parts of a run that are not P2P nodes of ours.
NOT_NODES = ("seeder", "controller")


def from_plan(plan: Any) -> PlanView:
    """Read harness.plan.model.Plan (or its JSON dict)."""
    d = _as_dict(plan)
    raw_nodes = [_as_dict(n) for n in d["nodes"]]
    nodes = tuple(
        NodeSpec(name=n["name"], role=n["role"], group=n.get("group") or "", address=n["address"],
                 port=int(n["p2p_port"]), control_port=int(n["control_port"]), config=dict(n["config"]))
        for n in raw_nodes if n["role"] not in NOT_NODES
    )
    seeders = [n for n in raw_nodes if n["role"] == "seeder"]
    seeder = None
    if seeders:
        s = seeders[0]
        seeder = SeederSpec(name=s["name"], address=s["address"], port=int(s["p2p_port"]),
                            control_port=int(s["control_port"]), config=dict(s["config"]))
    timeline = tuple(
        Event(float(e["at"]), e["action"], tuple(e.get("nodes") or ()), dict(e.get("params") or {}), e.get("phase", "once"))
        for e in map(_as_dict, d.get("timeline") or ())
    )
    view = PlanView(
        scenario=d["name"], seed=int(d.get("seed", 0)), digest="", duration=float(d.get("duration") or 0.0),
        nodes=nodes, seeder=seeder, timeline=timeline, expect=_expectations(d.get("checks") or ()),
    )
    digest = getattr(plan, "digest", None) or d.get("digest") or digest_of(view.to_dict())
    return dataclasses.replace(view, digest=str(digest))


def load(scenario_path: str | Path, seed: int | None = None) -> PlanView:
    """Load and validate a scenario file, plan it, and view the plan."""
    from harness.scenario import load_scenario  # first: harness.plan.planner alone hits an import cycle
    from harness.plan.planner import plan as make_plan

    scenario = load_scenario(Path(scenario_path))
    return from_plan(make_plan(scenario, seed))
