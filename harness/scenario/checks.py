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

from pydantic import BaseModel, ConfigDict, Field

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


@CHECKS.register("not_eclipsed", description="The victims' outbound peers are never mostly attackers.")
class NotEclipsed(Check):
    victim: Selector
    max_attacker_share: float = Field(default=0.5, ge=0.0, le=1.0)


@CHECKS.register("all_connected", description="Every honest node ends with at least min_outbound outbound peers.")
class AllConnected(Check):
    min_outbound: int = Field(default=1, ge=0)


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
