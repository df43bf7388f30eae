"""Where a member answers, as the backend reports it: shared by the contract and the control client."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Endpoint:
    """Where a member's P2P (for the seeder: DNS) and control services answer, as seen from the
    harness: a loopback port, a container IP or a port-forward. ``name`` is the planned member."""

    name: str
    address: str
    port: int
    control_url: str

    @property
    def p2p(self) -> str:
        return f"{self.address}:{self.port}"


def endpoint_record(address: str, port: int, control_url: str) -> dict[str, Any]:
    """How an endpoint is stored in ``RunState.endpoints``."""
    return {"p2p": f"{address}:{port}", "control_url": control_url}
