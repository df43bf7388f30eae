"""Attacker kinds a scenario may deploy, with their params models.

Whether a kind can run today, and how, is decided here and nowhere else: the `runnable` flag of its
entry and `runs_as`:

- `runs_as="node"` (sybil): *passive* attacker nodes, our own node software on the
  attacker's planned addresses, listening and answering the protocol, never dialling out;
- `runs_as="attacker"` (spam, eclipse, bootstrap, spy): *active* identities in a `harness-node attack` process
  (harness_node.attack), dialling their targets from their planned addresses; the planner writes
  each identity's config with `plan_params` (docs/attackers.md).

Kinds that are not runnable validate and plan (the schema has their place) but `harness
run`/`deploy` refuse them before anything starts (`refuse_unrunnable`).

Adding a kind is one local change here: a params class with `@ATTACKER_KINDS.register(...)`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from harness_node.attack.behaviours import BEHAVIOURS
from harness_node.attack.bootstrap import BLOCK_DOWNLOAD_TIMEOUT, DEFAULT_BLOCK_DELAY

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


class BootstrapParams(BaseModel):
    """The nodes behind a poisoned seeder's answers (harness_node/attack/bootstrap.py): they listen at
    the planned addresses the seeder hands out and, once a victim connects, fill its address table,
    censor its transactions and serve its blocks late. `targets`: the honest nodes each identity
    dials as a quiet peer to learn blocks from (never the victims)."""

    model_config = ConfigDict(extra="forbid")

    push_addresses: bool = True  # addr pushes of the attacker's addresses (getaddr is always answered with them)
    push_every: Duration = Field(default=60.0, gt=0)  # between pushes to a connected victim (Core time)
    censor: bool = True  # fetch the victims' transactions and never relay them
    delay_blocks: bool = True  # announce blocks to the victims, serve them `block_delay` after their getdata
    # at most Core's block download timeout: a victim enforcing it would drop the attacker
    block_delay: Duration = Field(default=DEFAULT_BLOCK_DELAY, ge=0, le=BLOCK_DOWNLOAD_TIMEOUT)


def bootstrap_plan_params(params: BootstrapParams, index: int, fellows: Sequence[str]) -> dict[str, Any]:
    """Identity `index`'s params with the entry's every planned "ip:port" (`fellows`) to advertise:
    where each identity runs in a process of its own (a container, a pod) it could not otherwise
    name the others in its addr pushes and getaddr answers, as one local process does."""
    return {**params.model_dump(mode="json"), "attacker_addresses": list(fellows)}


ATTACKER_KINDS.register("bootstrap", runnable=True, runs_as="attacker", listens=True,
                        plan_params=bootstrap_plan_params, plan_fellows=True,
                        description="The nodes behind a poisoned or rogue seeder's answers: they listen at the "
                                    "addresses it hands out and, once a victim connects, fill its address table "
                                    "with attacker addresses, censor its transactions (accept, never relay) and "
                                    "answer its block getdata only at its download timeout.")(BootstrapParams)


class EclipseParams(BaseModel):
    """Heilman et al. 2015 (harness_node.attack.eclipse). The budget is the entry's `count` (one
    planned address per identity) over its `netgroups` /16s; the victims are its `targets`; the
    victim's restart is a `restart_node` timeline action. Durations are Core time (x `time_scale`)."""

    model_config = ConfigDict(extra="forbid")

    trash: int = Field(default=1000, ge=0, le=100_000)  # trash addresses per identity, per victim, per flood
    trash_network: str = "11.0.0.0/8"  # where trash is drawn from: routable, outside every planned range
    advertise: Literal["budget", "own"] = "budget"  # addr and getaddr carry every identity's address, or its own
    flood_every: Duration = 600.0  # between floods on a held connection
    reconnect_after: Duration = 5.0  # before redialling a victim that evicted or dropped us
    start: Duration = 0.0  # before the first dial (after the attacker process starts): let the victims find honest peers
    ramp: Duration = 60.0  # first dials spread over this long, so each handshake ends before the next arrives
    hold_inbound: bool = True  # (b) keep the victims' inbound slots; false: handshake, flood, leave
    listen: bool = True  # (c) accept the victims' dials and answer getaddr with attacker addresses only

    @field_validator("trash_network")
    @classmethod
    def _network(cls, value: str) -> str:
        try:
            net = ipaddress.ip_network(value, strict=False)
        except ValueError:
            raise problem(f"{value!r} is not a network like 11.0.0.0/8") from None
        if net.is_loopback or net.is_private or net.num_addresses < 2:
            # a planned range (127/8 locally, private ranges on Docker and Kubernetes) would make trash
            # addresses the victims can dial, and possibly another node's
            raise problem(f"{value!r}: trash must come from a routable network with room (e.g. 11.0.0.0/8)")
        return str(net)


def eclipse_plan_params(params: EclipseParams, index: int, fellows: Sequence[str]) -> dict[str, Any]:
    """Identity `index`'s params in the attacker process's vocabulary (attack.eclipse.EclipseParams):
    with `advertise: budget`, every identity's planned "ip:port" (`fellows`, the entry's budget)."""
    out = params.model_dump(mode="json", exclude={"advertise"})
    out["attacker_addresses"] = list(fellows) if params.advertise == "budget" else []
    return out


ATTACKER_KINDS.register("eclipse", runnable=True, runs_as="attacker", plan_params=eclipse_plan_params,
                        plan_fellows=True, listens="listen",
                        description="Heilman et al. 2015: each identity (the entry's count over its netgroups) "
                                    "dials the targets, floods their new table with attacker and trash addresses, "
                                    "holds their inbound slots (redialling when evicted) and answers getaddr with "
                                    "attacker addresses only; the victim's restart is a restart_node action.")(EclipseParams)


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


ATTACKER_KINDS.register("spy", runnable=True, runs_as="attacker", plan_params=spy_plan_params, listens="listen",
                        description="A supernode that connects to every target, relays nothing and times their "
                                    "transaction announcements; its listening identities advertise Dandelion and "
                                    "can be chosen as stem relays (harness_node/attack/spy.py). The collector reads "
                                    "its views and scores the source estimators (harness/analysis/privacy.py)."
                        )(SpyParams)


@ATTACKER_KINDS.register("malicious_seeder", runnable=False,
                         refusal="a malicious seeder is the seeder's own mode, not an attacker: switch it with the "
                                 "timeline action seeder_mode (poison, mixed, stale, ... or rogue) and run the nodes "
                                 "behind its answers as an attacker of kind bootstrap (docs/attackers.md)",
                         description="A rogue DNS seeder as an attacker entry. Not runnable, on purpose: a malicious "
                                     "seeder is the seeder's own `seeder_mode` (poison, mixed, ... or rogue: a rogue "
                                     "process on its address), and the nodes behind its answers are a `bootstrap` "
                                     "attacker (docs/attackers.md, Malicious bootstrap).")
class MaliciousSeederParams(AttackerParams):
    pass


def runnable(kind: str) -> bool:
    """Can attackers of this kind run today (as passive nodes or as attacker processes)?"""
    return bool(ATTACKER_KINDS.get(kind).meta.get("runnable", False))


def listens(kind: str, params: dict[str, Any]) -> bool:
    """Do identities of `kind` with these (planned) params accept the victims' dials? A kind's
    `listens` meta is True/False, or the name of the boolean param that decides (default true).
    Backends whose attacker members cannot be dialled refuse such identities."""
    rule = ATTACKER_KINDS.get(kind).meta.get("listens", False)
    return bool(params.get(rule, True)) if isinstance(rule, str) else bool(rule)


def runs_as(kind: str) -> str:
    """"node" (a passive attacker: our node software) or "attacker" (a harness-node attack process)."""
    return str(ATTACKER_KINDS.get(kind).meta.get("runs_as", "node"))


def identities_needed(kind: str, params: Any) -> int:
    """The fewest identities (`count`) an attacker of `kind` with `params` needs (default 1)."""
    need = ATTACKER_KINDS.get(kind).meta.get("identities_needed") if kind in ATTACKER_KINDS else None
    return int(need(params)) if need and isinstance(params, BaseModel) else 1


def plan_params(kind: str, params: BaseModel, index: int, fellows: Sequence[str] = ()) -> dict[str, Any]:
    """Identity `index`'s params as its attacker process takes them (default: the params as written).
    `fellows`: every identity's planned "ip:port" of the same entry, for kinds registered with
    `plan_fellows=True` (an eclipse attacker advertises its whole budget)."""
    meta = ATTACKER_KINDS.get(kind).meta
    translate: Callable[..., dict[str, Any]] | None = meta.get("plan_params")
    if translate is None:
        return params.model_dump(mode="json")
    return translate(params, index, list(fellows)) if meta.get("plan_fellows") else translate(params, index)


def runnable_kinds() -> list[str]:
    return [entry.name for entry in ATTACKER_KINDS if entry.meta.get("runnable", False)]


def refuse_unrunnable(attackers: Sequence[Any], file: str | None = None) -> None:
    """ScenarioError (exit 2) naming the first attacker whose kind has no implementation yet.

    `attackers`: the scenario's attacker entries (anything with `.kind`), in file order.
    """
    for index, attacker in enumerate(attackers):
        if not runnable(attacker.kind):
            kinds = ", ".join(runnable_kinds())
            refusal = ATTACKER_KINDS.get(attacker.kind).meta.get("refusal")  # refused by design, not yet to do
            why = f"kind {attacker.kind} does not run: {refusal}" if refusal else \
                f"kind {attacker.kind} is not implemented yet — arrives with {ATTACKS_ISSUE}"
            raise ScenarioError(f"{why}; attackers of kind {kinds} run today", file=file, path=("attackers", index))
