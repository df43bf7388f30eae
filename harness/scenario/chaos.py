"""The network a scenario's nodes live in (docs/chaos.md): regions with an inter-region round-trip
matrix, and bandwidth classes. Both are assigned to P2P nodes (honest and passive attackers) by
share or selector; the planner resolves them (harness/plan/chaos.py) and each node enforces them in
its link layer (harness_node/net/shaping.py).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from harness.scenario.problem import problem
from harness.scenario.selectors import Selector

# Default round trips (ms) between three regions: medians of the city-to-city pings in WonderProxy's
# "Miles per Millisecond" (P. Reinheimer, 2011; the measurement WonderNetwork's global ping
# statistics continue), cities grouped by continent: North America (Baltimore, Dallas, Fremont,
# New York), Europe (Milan, Moscow, Paris, Zurich), Oceania (Brisbane, Sydney). docs/chaos.md
# shows the derivation.
DEFAULT_RTT_MS: dict[str, dict[str, float]] = {
    "na": {"na": 61.0, "eu": 131.0, "oc": 231.0},
    "eu": {"na": 131.0, "eu": 59.0, "oc": 347.0},
    "oc": {"na": 231.0, "eu": 347.0, "oc": 33.0},
}
MAX_RTT_MS = 2000.0  # a round trip beyond two seconds is not a terrestrial link
MAX_KBIT = 10_000_000.0  # 10 Gbit/s (the node's own bound)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class _Share(_Strict):
    """Which nodes an entry takes: a selector (`nodes`), or a share of the rest (`percent`), or
    neither (the entry takes whatever the others leave)."""

    nodes: Selector | None = None
    percent: float | None = Field(default=None, gt=0.0, le=100.0, allow_inf_nan=False)

    @model_validator(mode="after")
    def _one(self) -> "_Share":
        if self.nodes is not None and self.percent is not None:
            raise problem("give at most one of: nodes (a selector) or percent (of the nodes not selected)")
        return self


class RegionShare(_Share):
    region: str


class Regions(_Strict):
    """network.regions: the RTT matrix (default: DEFAULT_RTT_MS), jitter, and who is where."""

    rtt_ms: dict[str, dict[str, float]] = Field(default_factory=lambda: {k: dict(v) for k, v in DEFAULT_RTT_MS.items()})
    jitter: float = Field(default=0.1, ge=0.0, lt=1.0, allow_inf_nan=False)  # +- share of each one-way delay
    assign: list[RegionShare] = Field(min_length=1)

    @model_validator(mode="after")
    def _matrix(self) -> "Regions":
        names = set(self.rtt_ms)
        for a, row in self.rtt_ms.items():
            if set(row) != names:
                raise problem(f"rtt_ms.{a} must give a round trip to every region {sorted(names)}, "
                              f"has {sorted(row)}", "rtt_ms")
            for b, ms in row.items():
                if not 0.0 <= ms <= MAX_RTT_MS:
                    raise problem(f"rtt_ms.{a}.{b} = {ms}: allowed 0..{MAX_RTT_MS:g} ms", "rtt_ms")
                if abs(ms - self.rtt_ms[b][a]) > 1e-9:
                    raise problem(f"rtt_ms is not symmetric: {a}->{b} {ms} but {b}->{a} {self.rtt_ms[b][a]}", "rtt_ms")
        for i, share in enumerate(self.assign):
            if share.region not in names:
                raise problem(f"{share.region!r} is not a region of rtt_ms (known: {sorted(names)})", "assign", i, "region")
        return self


class BandwidthClass(_Share):
    """Upload/download caps in kbit/s for a share of the nodes; null: unlimited."""

    up_kbit: float | None = Field(default=None, gt=0.0, le=MAX_KBIT, allow_inf_nan=False)
    down_kbit: float | None = Field(default=None, gt=0.0, le=MAX_KBIT, allow_inf_nan=False)


class Bandwidth(_Strict):
    """network.bandwidth: classes of nodes by caps; nodes no class takes are unlimited."""

    classes: list[BandwidthClass] = Field(min_length=1)
