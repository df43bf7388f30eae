"""Checks a scenario expects to hold at the end of a run, written inline in `expect:`

    expect:
      - check: tx_propagation
        quantile: 90
        below: 5s

Each check is a model registered under its name; evaluating it is the report's job. Adding a
check is one local change: a `Check` subclass with `@CHECKS.register(...)`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from harness.scenario.durations import Duration
from harness.scenario.problem import problem
from harness.scenario.registry import Registry
from harness.scenario.selectors import Selector

CHECKS: Registry = Registry("check")


class Check(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    check: str


@CHECKS.register("tx_propagation", description="Time for a transaction to reach the quantile of honest nodes.")
class TxPropagation(Check):
    quantile: Literal[50, 90, 100] = 90
    below: Duration


@CHECKS.register("block_propagation", description="Time for a block to reach the quantile of honest nodes.")
class BlockPropagation(Check):
    quantile: Literal[50, 90, 100] = 90
    below: Duration


@CHECKS.register("spam_banned", description="Every attacker peer is banned (or discouraged) by its targets in time.")
class SpamBanned(Check):
    within: Duration
    attackers: Selector = Selector(role="attacker")


@CHECKS.register("no_honest_banned", description="No honest node bans or discourages another honest node.")
class NoHonestBanned(Check):
    pass


@CHECKS.register("not_eclipsed", description="The victims' outbound peers are never mostly attackers, and at most "
                                              "max_eclipsed_share of them end the run eclipsed.")
class NotEclipsed(Check):
    victim: Selector
    max_attacker_share: float = Field(default=0.5, ge=0.0, le=1.0)  # of each victim's outbound peers, at any sample
    max_eclipsed_share: float = Field(default=0.0, ge=0.0, le=1.0)  # of the victims, eclipsed at the end


@CHECKS.register("eclipsed", description="At least min_share of the victims end the run eclipsed (every outbound "
                                         "peer an attacker), reached within the bound.")
class Eclipsed(Check):
    victim: Selector
    min_share: float = Field(default=1.0, gt=0.0, le=1.0)
    within: Duration | None = None  # since the run start; default: any time before the end


@CHECKS.register("all_connected", description="Every honest node ends with at least min_outbound outbound peers.")
class AllConnected(Check):
    min_outbound: int = Field(default=1, ge=0)


@CHECKS.register("healed_within", description="Every poisoned victim has an honest outbound peer again within the "
                                                "bound after the seeder turns honest.")
class HealedWithin(Check):
    victim: Selector
    within: Duration


@CHECKS.register("censored_share", description="Share of the victims' transactions that never reached an honest "
                                                "node other than the victims, within the bounds.")
class CensoredShare(Check):
    victim: Selector
    at_least: float | None = Field(default=None, ge=0.0, le=1.0)
    at_most: float | None = Field(default=None, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _bounded(self) -> "CensoredShare":
        if self.at_least is None and self.at_most is None:
            raise problem("give at least one bound: at_least (the attack censors) or at_most (the defence holds)")
        if self.at_least is not None and self.at_most is not None and self.at_least > self.at_most:
            raise problem(f"at_least ({self.at_least}) is above at_most ({self.at_most})")
        return self


@CHECKS.register("spy_precision_at_most",
                 description="A spy's source estimator names the right sender for at most this share (precision).")
class SpyPrecisionAtMost(Check):
    at_most: float = Field(ge=0.0, le=1.0)
    estimator: Literal["first-spy", "timing"] = "first-spy"
    # the senders' relay policy in a network that mixes them ("all": every honest node, the default)
    relay_policy: Literal["flood", "diffusion", "dandelion", "all"] | None = None


@CHECKS.register("spy_recall_within",
                 description="A spy's recall (share of transactions it attributes to their sender) stays within "
                             "tolerance of its share of nodes p (Dandelion++'s bound).")
class SpyRecallWithin(Check):
    tolerance: float = Field(ge=0.0, le=1.0)
    estimator: Literal["first-spy", "timing"] = "first-spy"
    relay_policy: Literal["flood", "diffusion", "dandelion", "all"] | None = None


def parse_check(data: Any) -> Check:
    """Validate one `expect:` item with the model its `check` names (a pydantic validator)."""
    if not isinstance(data, dict):
        raise problem(f"a check is a mapping like {{check: tx_propagation, quantile: 90, below: 5s}} "
                      f"(checks: {', '.join(CHECKS.names())})")
    if "check" not in data:
        raise problem(f"missing required key 'check' (one of: {', '.join(CHECKS.names())})")
    name = data["check"]
    if not isinstance(name, str) or name not in CHECKS:
        raise problem(CHECKS.unknown(name), "check")
    return CHECKS.get(name).params.model_validate(data)
