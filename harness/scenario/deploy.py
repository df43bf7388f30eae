"""The scenario's `deploy:` section: how a container backend places the network, not what the
network is. The local backend ignores it; the docker backend packs nodes and sets limits from it.

    deploy:
      nodes_per_container: 1        # >1: that many nodes share one `harness-node host` container
      resources:
        node:   {memory: 64m, cpus: 0.5, pids: 256}   # per container holding nodes
        seeder: {memory: 128m}
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from harness.scenario.problem import problem

MAX_NODES_PER_CONTAINER = 1_000
MAX_CPUS = 256.0
MIN_MEMORY_BYTES = 6 * 1024 * 1024  # Docker refuses a memory limit below 6 MB
_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024 ** 2, "g": 1024 ** 3}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class Resources(_Strict):
    memory: str | None = None  # Docker's notation: 64m, 1g, 524288k
    cpus: float | None = Field(default=None, gt=0, le=MAX_CPUS, allow_inf_nan=False)
    pids: int | None = Field(default=None, ge=16, le=1_000_000)

    @field_validator("memory")
    @classmethod
    def _memory(cls, value: str | None) -> str | None:
        if value is not None and memory_bytes(value) < MIN_MEMORY_BYTES:
            raise problem(f"must be at least 6m (Docker's smallest limit), got {value!r}")
        return value

    def docker_limits(self) -> dict[str, Any]:
        """The docker host-config keys (mem_limit, nano_cpus, pids_limit) of the limits given."""
        out: dict[str, Any] = {}
        if self.memory is not None:
            out["mem_limit"] = memory_bytes(self.memory)
        if self.cpus is not None:
            out["nano_cpus"] = int(self.cpus * 1e9)
        if self.pids is not None:
            out["pids_limit"] = self.pids
        return out


class ResourceLimits(_Strict):
    node: Resources = Resources()
    seeder: Resources = Resources()


class Deploy(_Strict):
    nodes_per_container: int = Field(default=1, ge=1, le=MAX_NODES_PER_CONTAINER)
    resources: ResourceLimits = ResourceLimits()


def memory_bytes(text: str) -> int:
    """'64m' -> 67108864; a number with an optional b/k/m/g unit (Docker's notation)."""
    match = re.fullmatch(r"\s*(\d+)\s*([bkmgBKMG]?)\s*", str(text))
    if not match:
        raise problem(f"must be a size like 64m or 1g (a whole number and b, k, m or g), got {text!r}")
    return int(match.group(1)) * _UNITS[match.group(2).lower()]
