"""Attacker kinds a scenario may deploy, with their params models.

Whether a kind can run today, and how, is decided here and nowhere else: the `runnable` flag of its
entry and `runs_as`:

- `runs_as="node"` (sybil, eclipse today): *passive* attacker nodes, our own node software on the
  attacker's planned addresses, listening and answering the protocol, never dialling out;
- `runs_as="attacker"` (spam, spy): *active* identities in a `harness-node attack` process
  (harness_node.attack), dialling their targets from their planned addresses; the planner writes
  each identity's config with `plan_params` (docs/attackers.md).

Kinds that are not runnable validate and plan (the schema has their place) but `harness
run`/`deploy` refuse them before anything starts (`refuse_unrunnable`).

Adding a kind is one local change here: a params class with `@ATTACKER_KINDS.register(...)`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from harness_node.attack.behaviours import BEHAVIOURS

from harness.errors import ScenarioError
from harness.scenario.durations import Duration
from harness.scenario.problem import problem
from harness.scenario.registry import Registry

ATTACKER_KINDS: Registry = Registry("attacker kind")
ATTACKS_ISSUE = "the attacks issue"  # where the active behaviours are specified


class AttackerParams(BaseModel):
    # Free-form for now: the attack issue replaces these with typed, extra="forbid" models.
    model_config = ConfigDict(extra="allow")


class SpamBehaviour(BaseModel):
    """One spam behaviour (harness_node.attack.behaviours.CATALOGUE) and its pace."""

    model_config = ConfigDict(extra="forbid")

    behaviour: str
    rate: float = Field(default=50.0, gt=0, le=10_000, allow_inf_nan=False)  # messages per second
    start: Duration = 0.0  # after the attack process starts
    count: int | None = Field(default=None, ge=1, le=100_000)  # default: what the table needs for 100 points
    connections: int = Field(default=1, ge=1, le=1000)  # connection-flood only
    observe: Duration = 10.0  # how long to watch for the victim's reaction after the last message

    @field_validator("behaviour")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in BEHAVIOURS:
            raise problem(f"unknown spam behaviour {value!r}; known: {', '.join(BEHAVIOURS)}")
        return value

    @field_validator("connections")
    @classmethod
    def _flood_only(cls, value: int, info: Any) -> int:
        name = info.data.get("behaviour")
        if value > 1 and name in BEHAVIOURS and not BEHAVIOURS[name].connections:
            raise problem(f"only connection-flood opens more than one connection (got {value} for {name})")
        return value


class SpamParams(BaseModel):
    """Each identity of a spam attacker runs one behaviour of `behaviours` (identity k runs number
    k modulo their count), so a ban earned by one behaviour never hides another's result."""

    model_config = ConfigDict(extra="forbid")

    behaviours: list[SpamBehaviour] = Field(min_length=1, max_length=len(BEHAVIOURS) * 10)


def spam_plan_params(params: SpamParams, index: int) -> dict[str, Any]:
    """Identity `index`'s params in the attacker process's vocabulary (attack.spam.SpamParams)."""
    chosen = params.behaviours[index % len(params.behaviours)]
    return {"behaviours": [chosen.model_dump(mode="json")]}


ATTACKER_KINDS.register("spam", runnable=True, runs_as="attacker", plan_params=spam_plan_params,
                        identities_needed=lambda params: len(params.behaviours),
                        description="Spam peers: each identity floods its targets with one behaviour of the "
                                    "spam catalogue (invalid, oversized or malformed messages, floods, slow "
                                    "handshakes) and records how the victims react.")(SpamParams)


@ATTACKER_KINDS.register("eclipse", runnable=True,
                         description="Today: a passive sybil population (answers, never dials) on the attacker's "
                                     "/16s; active eclipse behaviour (Heilman-style: filling tried/new tables and "
                                     "inbound slots) arrives with the attack issue.")
class EclipseParams(AttackerParams):
    pass


@ATTACKER_KINDS.register("sybil", runnable=True,
                         description="Passive sybil population: many identities that answer, never dial; "
                                     "misbehaviour arrives with the attack issue.")
class SybilParams(AttackerParams):
    pass


class SpyParams(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    connections: int = Field(default=1, ge=0, le=8)  # links from identity 0 to each target (harness_node.attack.spy)
    listen: bool = True  # be dialled: a would-be Dandelion stem relay
    advertise_dandelion: bool = True


def spy_plan_params(params: SpyParams, index: int) -> dict[str, Any]:
    """Identity 0 is the supernode (it dials every target `connections` times); the others only
    listen, so the spy's budget of inbound slots at each node stays `connections` whatever `count`
    is, while `count` sets its share of nodes p (each identity is one node honest nodes may dial)."""
    return {**params.model_dump(mode="json"), "connections": params.connections if index == 0 else 0}


ATTACKER_KINDS.register("spy", runnable=True, runs_as="attacker", plan_params=spy_plan_params,
                        description="A supernode that connects to every target, relays nothing and times their "
                                    "transaction announcements; its listening identities advertise Dandelion and "
                                    "can be chosen as stem relays (harness_node/attack/spy.py). The collector reads "
                                    "its views and scores the source estimators (harness/analysis/privacy.py)."
                        )(SpyParams)


@ATTACKER_KINDS.register("malicious_seeder", runnable=False,
                         description="A rogue DNS seeder answering with attacker addresses. Not implemented as an "
                                     "attacker yet; the timeline's `seeder_mode: rogue` takes over the seeder's "
                                     "address today.")
class MaliciousSeederParams(AttackerParams):
    pass


def runnable(kind: str) -> bool:
    """Can attackers of this kind run today (as passive nodes or as attacker processes)?"""
    return bool(ATTACKER_KINDS.get(kind).meta.get("runnable", False))


def runs_as(kind: str) -> str:
    """"node" (a passive attacker: our node software) or "attacker" (a harness-node attack process)."""
    return str(ATTACKER_KINDS.get(kind).meta.get("runs_as", "node"))


def identities_needed(kind: str, params: Any) -> int:
    """The fewest identities (`count`) an attacker of `kind` with `params` needs (default 1)."""
    need = ATTACKER_KINDS.get(kind).meta.get("identities_needed") if kind in ATTACKER_KINDS else None
    return int(need(params)) if need and isinstance(params, BaseModel) else 1


def plan_params(kind: str, params: BaseModel, index: int) -> dict[str, Any]:
    """Identity `index`'s params as its attacker process takes them (default: the params as written)."""
    translate: Callable[[Any, int], dict[str, Any]] | None = ATTACKER_KINDS.get(kind).meta.get("plan_params")
    return translate(params, index) if translate else params.model_dump(mode="json")


def runnable_kinds() -> list[str]:
    return [entry.name for entry in ATTACKER_KINDS if entry.meta.get("runnable", False)]


def refuse_unrunnable(attackers: Sequence[Any], file: str | None = None) -> None:
    """ScenarioError (exit 2) naming the first attacker whose kind has no implementation yet.

    `attackers`: the scenario's attacker entries (anything with `.kind`), in file order.
    """
    for index, attacker in enumerate(attackers):
        if not runnable(attacker.kind):
            kinds = ", ".join(runnable_kinds())
            raise ScenarioError(f"kind {attacker.kind} is not implemented yet — arrives with {ATTACKS_ISSUE}; "
                                f"attackers of kind {kinds} run today", file=file, path=("attackers", index))
