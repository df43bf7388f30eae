"""Peer-management settings: slot counts, netgroups, seeds, and the countermeasure switches.

Every countermeasure is on by default (Bitcoin Core's behaviour) and can be switched off one by one,
so eclipse experiments can compare a defended node with an undefended one.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from typing import Any

from ..addr.bootstrap import SeedServer, parse_seed_endpoint
from ..dictconfig import from_mapping
from ..names import COUNTERMEASURE_PROFILES, countermeasure_switches

MAX_OUTBOUND_FULL_RELAY = 8  # net.h MAX_OUTBOUND_FULL_RELAY_CONNECTIONS
MAX_BLOCK_RELAY_ONLY = 2  # net.h MAX_BLOCK_RELAY_ONLY_CONNECTIONS (0.19)
MAX_FEELER = 1  # net.h MAX_FEELER_CONNECTIONS
MAX_CONNECTIONS = 125  # net.h DEFAULT_MAX_PEER_CONNECTIONS
MAX_ANCHORS = 2  # net.h MAX_BLOCK_RELAY_ONLY_ANCHORS (0.21)
NETGROUP_BITS = (8, 16, 24, 32)
SEEDER_FORMS = '"ip", "ip:port" or "zone@ip:port"'
ENDPOINT_FORMS = '"ip" or "ip:port"'


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
    inbound_not_tried: bool = True  # #8594: an inbound peer's address never enters addrman (off: 0.9.3 put it in tried)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | str) -> "Countermeasures":
        """Switches from a mapping, a profile name (names.COUNTERMEASURE_PROFILES), or a mapping
        with a `profile` key whose switches the other keys override."""
        if isinstance(data, str):
            data = {"profile": data}
        if not isinstance(data, dict):
            raise ValueError(f"peering.countermeasures must be a mapping or a profile name, got {data!r}")
        data = dict(data)
        profile = data.pop("profile", None)
        base: dict[str, Any] = {}
        if profile is not None:
            if profile not in COUNTERMEASURE_PROFILES:
                raise ValueError(f"peering.countermeasures.profile must be one of "
                                 f"{tuple(COUNTERMEASURE_PROFILES)}, got {profile!r}")
            base = dict(countermeasure_switches(profile))
        for k, v in data.items():
            if not isinstance(v, bool):
                raise ValueError(f"peering.countermeasures.{k} must be true or false, got {v!r}")
        return from_mapping(cls, {**base, **data}, "peering.countermeasures")


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
    # False: Core's rule, no self-announcement in initial block download (a fresh testnet is in it
    # until its first block). True, the testbed's default: announce anyway, so a block-less testnet
    # still spreads addresses by gossip (protocol.md §2.3).
    self_advertise_in_ibd: bool = True
    countermeasures: Countermeasures = field(default_factory=Countermeasures)

    def __post_init__(self) -> None:
        if isinstance(self.countermeasures, (dict, str)):
            self.countermeasures = Countermeasures.from_dict(self.countermeasures)
        for name in ("outbound_full_relay", "block_relay", "max_connections"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise ValueError(f"peering.{name} must be an integer >= 0, got {v!r}")
        if self.max_connections < self.outbound_full_relay + self.block_relay + MAX_FEELER:
            raise ValueError(f"peering.max_connections ({self.max_connections}) must be at least "
                             f"outbound_full_relay + block_relay + 1 feeler "
                             f"({self.outbound_full_relay + self.block_relay + MAX_FEELER})")
        self._validate_seeds()
        if self.netgroup_bits not in NETGROUP_BITS:
            raise ValueError(f"peering.netgroup_bits must be one of {NETGROUP_BITS}, got {self.netgroup_bits!r}")

    def _validate_seeds(self) -> None:
        """A bad entry would otherwise kill the bootstrap task silently, minutes into a run."""
        for name in ("seeders", "fixed_seeds", "seednodes"):
            entries = getattr(self, name)
            if not isinstance(entries, list):
                raise ValueError(f"peering.{name} must be a list, got {type(entries).__name__}")
            allowed = SEEDER_FORMS if name == "seeders" else ENDPOINT_FORMS
            for i, spec in enumerate(entries):
                try:
                    if name == "seeders":
                        SeedServer.parse(spec, self.seed_zone)
                    else:
                        parse_seed_endpoint(spec, 18444)
                except ValueError as e:
                    raise ValueError(f"peering.{name}[{i}] {spec!r}: {e}; expected {allowed}") from None

    @property
    def max_inbound(self) -> int:
        """Core: 125 - (8 + 2 + 1) = 114 inbound slots."""
        return self.max_connections - self.outbound_full_relay - self.block_relay - MAX_FEELER

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "PeerConfig":
        return from_mapping(cls, data, "peering")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
