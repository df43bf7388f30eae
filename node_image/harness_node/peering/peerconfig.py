"""Peer-management settings: slot counts, netgroups, seeds, and the countermeasure switches.

Every countermeasure is on by default (Bitcoin Core's behaviour) and can be switched off one by one,
so eclipse experiments can compare a defended node with an undefended one.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from ..dictconfig import from_mapping
from typing import Any

MAX_OUTBOUND_FULL_RELAY = 8  # net.h MAX_OUTBOUND_FULL_RELAY_CONNECTIONS
MAX_BLOCK_RELAY_ONLY = 2  # net.h MAX_BLOCK_RELAY_ONLY_CONNECTIONS (0.19)
MAX_FEELER = 1  # net.h MAX_FEELER_CONNECTIONS
MAX_CONNECTIONS = 125  # net.h DEFAULT_MAX_PEER_CONNECTIONS
MAX_ANCHORS = 2  # net.h MAX_BLOCK_RELAY_ONLY_ANCHORS (0.21)
NETGROUP_BITS = (8, 16, 24, 32)


@dataclass
class Countermeasures:
    feelers: bool = True  # #8282: feeler connections test new-table addresses
    anchors: bool = True  # 0.21: reconnect to 2 block-relay-only peers after a restart
    test_before_evict: bool = True  # #9037: a tried collision keeps a recently good entry
    netgroup_diversity: bool = True  # one automatic outbound connection per netgroup
    tried_table: bool = True  # select from tried as well as new (off = new table only)
    getaddr_cache: bool = True  # #18991: one cached getaddr reply per 21-27 h
    addr_rate_limit: bool = True  # 22.0: 0.1 addr/s token bucket per peer
    inbound_netgroup_eviction: bool = True  # eviction protects 4 peers by keyed netgroup

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Countermeasures":
        switches = from_mapping(cls, data, "peering.countermeasures")
        for k, v in data.items():
            if not isinstance(v, bool):
                raise ValueError(f"peering.countermeasures.{k} must be true or false, got {v!r}")
        return switches


@dataclass
class PeerConfig:
    outbound_full_relay: int = MAX_OUTBOUND_FULL_RELAY
    block_relay: int = MAX_BLOCK_RELAY_ONLY
    max_connections: int = MAX_CONNECTIONS
    netgroup_bits: int = 16  # testbed adaptation 1: /16 groups over many 127.a.* networks
    all_routable: bool = True  # testbed adaptation 1: loopback and private addresses count as routable
    seeders: list[str] = field(default_factory=list)  # DNS seeds: "ip:port" or "zone@ip:port"
    seed_zone: str = "seed.testnet."
    fixed_seeds: list[str] = field(default_factory=list)  # "ip:port", used after 60 s with an empty addrman
    seednodes: list[str] = field(default_factory=list)  # one-shot address-fetch peers (-seednode)
    self_advertise: bool = True
    countermeasures: Countermeasures = field(default_factory=Countermeasures)

    def __post_init__(self) -> None:
        if isinstance(self.countermeasures, dict):
            self.countermeasures = Countermeasures.from_dict(self.countermeasures)
        for name in ("outbound_full_relay", "block_relay", "max_connections"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise ValueError(f"peering.{name} must be an integer >= 0, got {v!r}")
        if self.max_connections < self.outbound_full_relay + self.block_relay + MAX_FEELER:
            raise ValueError(f"peering.max_connections ({self.max_connections}) must be at least "
                             f"outbound_full_relay + block_relay + 1 feeler "
                             f"({self.outbound_full_relay + self.block_relay + MAX_FEELER})")
        if self.netgroup_bits not in NETGROUP_BITS:
            raise ValueError(f"peering.netgroup_bits must be one of {NETGROUP_BITS}, got {self.netgroup_bits!r}")

    @property
    def max_inbound(self) -> int:
        """Core: 125 - (8 + 2 + 1) = 114 inbound slots."""
        return self.max_connections - self.outbound_full_relay - self.block_relay - MAX_FEELER

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "PeerConfig":
        return from_mapping(cls, data, "peering")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
