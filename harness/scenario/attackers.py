"""Attacker kinds a scenario may deploy. The attack issue fills in their params models; until then
each kind takes a free-form `params` mapping (passed to the attacker untouched).

Whether a kind can run today is decided here and nowhere else: the `runnable` flag of its entry.
Runnable kinds (sybil, eclipse) run as *passive* attacker nodes: our own node software on the
attacker's planned addresses, listening and answering the protocol, never dialling out. The others
validate and plan (the schema has their place) but `harness run`/`deploy` refuse them before
anything starts (`refuse_unrunnable`).

Adding a kind is one local change: a params class with `@ATTACKER_KINDS.register(...)`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from harness.errors import ScenarioError
from harness.scenario.registry import Registry

ATTACKER_KINDS: Registry = Registry("attacker kind")
ATTACKS_ISSUE = "the attacks issue"  # where the active behaviours are specified


class AttackerParams(BaseModel):
    # Free-form for now: the attack issue replaces these with typed, extra="forbid" models.
    model_config = ConfigDict(extra="allow")


@ATTACKER_KINDS.register("spam", runnable=False,
                         description="Floods its targets with invalid or oversized messages. "
                                     "Not implemented yet (arrives with the attacks issue).")
class SpamParams(AttackerParams):
    pass


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


@ATTACKER_KINDS.register("spy", runnable=False,
                         description="A supernode that connects to every target, relays nothing and times their "
                                     "transaction announcements; listening identities that advertise Dandelion can "
                                     "be chosen as stem relays (harness_node/attack/spy.py, harness/analysis/privacy.py). "
                                     "Built on the attacker runtime; runnable once the local backend places "
                                     "attacker processes.")
class SpyParams(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    connections: int = Field(default=1, ge=0, le=8)  # links to each target (harness_node.attack.spy)
    listen: bool = True  # be dialled: a would-be Dandelion stem relay
    advertise_dandelion: bool = True


@ATTACKER_KINDS.register("malicious_seeder", runnable=False,
                         description="A rogue DNS seeder answering with attacker addresses. Not implemented as an "
                                     "attacker yet; the timeline's `seeder_mode: rogue` takes over the seeder's "
                                     "address today.")
class MaliciousSeederParams(AttackerParams):
    pass


def runnable(kind: str) -> bool:
    """Can attackers of this kind run today (as passive nodes)?"""
    return bool(ATTACKER_KINDS.get(kind).meta.get("runnable", False))


def runnable_kinds() -> list[str]:
    return [entry.name for entry in ATTACKER_KINDS if entry.meta.get("runnable", False)]


def refuse_unrunnable(attackers: Sequence[Any], file: str | None = None) -> None:
    """ScenarioError (exit 2) naming the first attacker whose kind has no implementation yet.

    `attackers`: the scenario's attacker entries (anything with `.kind`), in file order.
    """
    for index, attacker in enumerate(attackers):
        if not runnable(attacker.kind):
            kinds = " and ".join(runnable_kinds())
            raise ScenarioError(f"kind {attacker.kind} is not implemented yet — arrives with {ATTACKS_ISSUE}; "
                                f"{kinds} attackers run today as passive nodes", file=file, path=("attackers", index))
