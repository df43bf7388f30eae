"""Timeline actions: what a fault (or the workload) asks a node to do, as data.

Each action is a params model registered under its name. The registry says which roles an action
may target, whether it takes a `duration` (the action is undone when it ends), and the default
target when a fault gives none. Executing an action is the controller's job; nothing here runs.

Adding an action is one local change: a params class with `@ACTIONS.register(...)` below.
"""

from __future__ import annotations

import ipaddress
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from harness.scenario.durations import Duration
from harness.scenario.problem import problem
from harness.scenario.registry import Registry
from harness.scenario.selectors import Selector
from harness_node.names import SEEDER_MODES
from harness_node.seeder.modes import MAX_SLOW_DELAY
from harness_node.wire.synthetic import FILL_KINDS, MAX_SYNTHETIC_BLOCK

ACTIONS: Registry = Registry("action")

# The seeder process's own modes (harness_node.names), subscripted with the tuple: one spelling.
SeederMode = Literal[SEEDER_MODES]  # type: ignore[valid-type]
# Scenario vocabulary only: a rogue seeder process takes over the seeder's address and ports
# (crawler off, serving only attacker addresses) until the action ends; see controller/timeline.py.
ROGUE_SEEDER = "rogue"
SeederActionMode = Literal[(*SEEDER_MODES, ROGUE_SEEDER)]  # type: ignore[valid-type]
NODE_ROLES = ("honest", "bitcoind")
# Lifecycle actions act on node processes; the seeder is switched with seeder_mode (a rogue one
# replaces it) rather than stopped or paused.
LIFECYCLE_ROLES = ("honest", "attacker", "bitcoind")


Fraction = Annotated[float, Field(ge=0.0, le=1.0)]
# Transactions or blocks one inject action asks for: the node creates them on its event loop in one
# control request, so a typo (count: 1000000000000) must be an error, not a node that never answers.
MAX_INJECT_COUNT = 1_000


class ActionParams(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class SeederParams(ActionParams):
    """What a seeder mode serves: the scenario's `seeder.params` and a `seeder_mode` action's `params`.
    Checked here, at validation, with the seeder process's own bounds, so a typo never reaches a run."""

    attacker_fraction: Fraction = 0.5  # mixed: share of answers that are attacker addresses
    delay: Duration = Field(default=5.0, le=MAX_SLOW_DELAY)  # slow: how long each answer is held back
    addresses: list[str] | None = None  # poison/mixed/stale/rogue: what to serve (default: the attackers')

    @field_validator("addresses")
    @classmethod
    def _ips(cls, value: list[str] | None) -> list[str] | None:
        for address in value or ():
            try:
                ipaddress.ip_address(address)
            except ValueError:
                raise problem(f"not an IP address: {address!r} (the seeder serves A/AAAA records, "
                              f"e.g. 127.3.0.1)") from None
        if value is not None and not value:
            raise problem("an empty list: give at least one IP address, or leave it out to serve the attackers'")
        return value


def roles_of(action: str) -> tuple[str, ...]:
    return ACTIONS.get(action).meta.get("roles", LIFECYCLE_ROLES)


def takes_duration(action: str) -> bool:
    return bool(ACTIONS.get(action).meta.get("takes_duration", False))


def default_target(action: str) -> Selector | None:
    return ACTIONS.get(action).meta.get("default_target")


@ACTIONS.register("stop_node", roles=LIFECYCLE_ROLES, takes_duration=True,
                  description="Stop the node (it saves its tables and frees its ports); with a duration, "
                              "start it again after it.")
class StopNode(ActionParams):
    pass


@ACTIONS.register("pause_node", roles=LIFECYCLE_ROLES, takes_duration=True,
                  description="Freeze the node as a stopped process would be: sockets stay open, nothing is "
                              "read or sent; resumed after the duration, or at the end of the run.")
class PauseNode(ActionParams):
    pass


@ACTIONS.register("restart_node", roles=LIFECYCLE_ROLES,
                  description="Stop the node and start it again at once, keeping or wiping its data directory "
                              "(peers.dat, banlist, anchors).")
class RestartNode(ActionParams):
    wipe_datadir: bool = False


@ACTIONS.register("inject_tx", roles=NODE_ROLES,
                  description="Ask the node to create and announce new transactions, as if from its wallet.")
class InjectTx(ActionParams):
    count: int = Field(default=1, ge=1, le=MAX_INJECT_COUNT)


@ACTIONS.register("inject_block", roles=NODE_ROLES,
                  description="Ask the node to mine new blocks on its tip and announce them; with `size`, "
                              "each filled with synthetic transactions (fill: txs) or padding to about that many bytes.")
class InjectBlock(ActionParams):
    count: int = Field(default=1, ge=1, le=MAX_INJECT_COUNT)
    size: int | None = Field(default=None, ge=1_000, le=MAX_SYNTHETIC_BLOCK)  # bytes, e.g. 540000
    fill: Literal[FILL_KINDS] = "txs"  # type: ignore[valid-type]


@ACTIONS.register("seeder_mode", roles=("seeder",), takes_duration=True,
                  default_target=Selector(role="seeder"),
                  description="Switch the DNS seeder's answers to another mode; with a duration, switch back after it. "
                              "`rogue`: stop the honest seeder and start a rogue one on its address and ports "
                              "(no crawler, mode poison: only the attackers' addresses, or params.addresses); "
                              "after the duration the honest seeder runs again.")
class SeederModeChange(ActionParams):
    mode: SeederActionMode
    params: SeederParams = Field(default_factory=SeederParams)


@ACTIONS.register("disconnect_peer", roles=NODE_ROLES,
                  description="Make the target drop its connection(s) to the given peer nodes or address.")
class DisconnectPeer(ActionParams):
    peer: Selector | None = None
    address: str | None = None

    @field_validator("address")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        if value is None:
            return value
        host, _, port = value.rpartition(":") if value.count(":") == 1 else (value, "", "")
        try:
            ipaddress.ip_address(host or value)
        except ValueError:
            raise problem(f"not an IP address or IP:port: {value!r} (e.g. 127.1.0.1 or 127.1.0.1:18444)") from None
        if port and not (port.isdigit() and 0 < int(port) < 65536):
            raise problem(f"bad port in {value!r}: 1..65535")
        return value

    @model_validator(mode="after")
    def _one_of(self) -> "DisconnectPeer":
        if (self.peer is None) == (self.address is None):
            raise problem("give exactly one of: peer (a selector) or address (IP or IP:port)")
        return self


# --- network chaos (docs/chaos.md): node-level emulation on every backend ------------------------
P2P_ROLES = ("honest", "attacker")  # our node software; bitcoind has no link emulation
MAX_SKEW = 30 * 86_400.0  # the node's own bound (harness_node.config.MAX_CLOCK_SKEW)
MAX_KBIT = 10_000_000.0


@ACTIONS.register("partition", roles=P2P_ROLES, takes_duration=True, default_target=Selector(role="honest"),
                  description="Cut the network into two or more groups of nodes (each a selector); messages "
                              "across the cut are held, as TCP holds them, and new connections across it fail, until "
                              "the heal at the end of the duration. one_way: only the first group cannot reach the "
                              "others. native: ask the backend for its own partition (Docker: network disconnect) "
                              "and fall back to the node-level one if it has none. Targets not in any group are untouched.")
class Partition(ActionParams):
    groups: list[Selector] = Field(min_length=2, max_length=16)
    one_way: bool = False
    native: bool = False


@ACTIONS.register("link_loss", roles=P2P_ROLES, takes_duration=True,
                  description="Drop this share of the messages the target sends to the given peers (every planned "
                              "P2P node if none are given); lifted at the end of the duration.")
class LinkLoss(ActionParams):
    loss: float = Field(gt=0.0, lt=1.0, allow_inf_nan=False)
    peers: Selector | None = None


@ACTIONS.register("clock_skew", roles=P2P_ROLES, takes_duration=True,
                  description="Move the target's wall clock by `seconds` (its version timestamps, addr times and "
                              "ban expiries); set back at the end of the duration.")
class ClockSkew(ActionParams):
    seconds: float = Field(ge=-MAX_SKEW, le=MAX_SKEW, allow_inf_nan=False)


@ACTIONS.register("bandwidth", roles=P2P_ROLES, takes_duration=True,
                  description="Set the target's upload/download caps (kbit/s over all its links; null: unlimited); "
                              "the previous caps come back at the end of the duration.")
class BandwidthChange(ActionParams):
    up_kbit: float | None = Field(default=None, gt=0.0, le=MAX_KBIT, allow_inf_nan=False)
    down_kbit: float | None = Field(default=None, gt=0.0, le=MAX_KBIT, allow_inf_nan=False)


@ACTIONS.register("churn", roles=LIFECYCLE_ROLES, takes_duration=True,
                  description="For the duration, the target nodes leave and come back: departures at `rate` per "
                              "second (Poisson), each node away for `away` seconds, then restarted with its data "
                              "directory kept or wiped. The planner expands it into stop_node events, so a seed "
                              "gives the same churn every run.")
class Churn(ActionParams):
    rate: float = Field(gt=0.0, le=100.0, allow_inf_nan=False)
    away: Duration = Field(default=10.0, gt=0.0)
    wipe_datadir: bool = False
