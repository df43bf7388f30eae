"""Node configuration: one stdlib dataclass, validated up front (errors name the field).

Stdlib only (no pydantic) so that a node process stays small; YAML is imported lazily.
"""

from __future__ import annotations

import ipaddress
import json
import pathlib
from dataclasses import asdict, dataclass, field
from typing import Any

from . import USER_AGENT
from .addr.bootstrap import parse_seed_endpoint
from .chain.chain import DEFAULT_MAX_ORPHAN_BLOCKS_MB, DEFAULT_MAX_STALE_BLOCKS_MB
from .chain.mempool import DEFAULT_MAX_MEMPOOL_SIZE_MB
from .dictconfig import from_mapping
from .names import MISBEHAVIOUR_POLICIES, RELAY_POLICIES
from .net.capture import DEFAULT_MAX_BYTES, MIN_MAX_BYTES
from .net.linkem import LinkModel
from .net.shaping import Bandwidth, Regions
from .peering.misbehaviour import Policy
from .peering.peerconfig import PeerConfig
from .relay.dandelion import DandelionConfig
from .timing import CORE_TIMERS, Timers
from .wire.messages import NODE_NETWORK, NODE_WITNESS

DEFAULT_P2P_PORT = 18444  # regtest (chainparams.cpp)
MAX_CLOCK_SKEW = 30 * 86400.0  # a month: beyond it a skew is a typo, not a fault


def parse_endpoint(text: str, default_port: int = DEFAULT_P2P_PORT) -> tuple[str, int]:
    """"ip:port", "ip" or "[v6]:port" -> (ip, port); ValueError on anything else."""
    return parse_seed_endpoint(text.strip() if isinstance(text, str) else text, default_port)


@dataclass
class NodeConfig:
    name: str = "node"
    bind: str = "127.0.0.1"  # transport: the IP we listen on and dial from
    # Protocol address (the plan's ip): what we advertise, put in version's addr_from and what
    # peers' addrman, netgroups and bans know us by. None: the same as `bind` (every local run).
    address: str | None = None
    port: int = DEFAULT_P2P_PORT
    listen: bool = True
    magic: str = "fabfb5da"
    control_port: int | None = None
    control_bind: str | None = None  # default: same address as `bind`
    control_token: str | None = None
    connect: list[str] = field(default_factory=list)  # -connect: only these peers, no automatic ones
    addnode: list[str] = field(default_factory=list)  # -addnode: kept connected, besides automatic peers
    relay_policy: str = "flood"
    dandelion: DandelionConfig = field(default_factory=DandelionConfig)  # read under relay_policy: dandelion
    user_agent: str = USER_AGENT
    services: int = NODE_NETWORK | NODE_WITNESS
    start_height: int = 0
    datadir: str | None = None
    time_scale: float = 1.0
    timers: dict[str, float] = field(default_factory=dict)  # unscaled seconds, by timing.CORE_TIMERS name
    allowlist: list[str] = field(default_factory=lambda: ["127.0.0.0/8"])
    misbehaviour_policy: str = Policy.BAN.value
    # memory bounds in MB (10^6 bytes), per node (a host of many nodes multiplies them)
    max_mempool_mb: float = DEFAULT_MAX_MEMPOOL_SIZE_MB  # Core's -maxmempool
    max_orphan_blocks_mb: float = DEFAULT_MAX_ORPHAN_BLOCKS_MB  # blocks waiting for their parent
    max_stale_blocks_mb: float = DEFAULT_MAX_STALE_BLOCKS_MB  # blocks stored off the best chain
    link: LinkModel = field(default_factory=LinkModel)
    # Chaos (docs/chaos.md): where we and every planned peer are, our bandwidth caps, our clock's offset
    regions: Regions = field(default_factory=Regions)
    bandwidth: Bandwidth = field(default_factory=Bandwidth)
    clock_skew: float = 0.0  # seconds added to the wall clock for version timestamps, addr times, bans
    seed: int | None = None
    peering: PeerConfig = field(default_factory=PeerConfig)  # slots, seeds, countermeasures
    extra: dict[str, Any] = field(default_factory=dict)  # labels the harness attaches (role, group)
    # Planned (protocol) addresses vs transport endpoints (docs/node.md "Protocol and transport
    # addresses"). Both empty by default: a planned address is its own endpoint.
    endpoints: dict[str, str] = field(default_factory=dict)  # planned ip -> "host:port" to dial instead
    inbound_hosts: dict[str, list[str]] = field(default_factory=dict)  # transport ip -> planned ips it hosts
    # Message capture (docs/capture.md): every message in and out, per peer, under
    # <datadir>/message_capture; also switched at run time by POST /capture.
    capture: bool = False
    capture_max_bytes: int = DEFAULT_MAX_BYTES

    def __post_init__(self) -> None:
        if isinstance(self.link, dict):
            self.link = LinkModel(**self.link)
        if isinstance(self.regions, dict):
            self.regions = from_mapping(Regions, self.regions, "regions")
        if isinstance(self.bandwidth, dict):
            self.bandwidth = from_mapping(Bandwidth, self.bandwidth, "bandwidth")
        if isinstance(self.peering, dict):
            self.peering = PeerConfig.from_dict(self.peering)
        if isinstance(self.dandelion, dict):
            self.dandelion = from_mapping(DandelionConfig, self.dandelion, "dandelion")
        if isinstance(self.misbehaviour_policy, Policy):
            self.misbehaviour_policy = self.misbehaviour_policy.value
        self.validate()

    def validate(self) -> None:
        if not self.name or not isinstance(self.name, str):
            raise ValueError("name must be a non-empty string")
        for fname in ("bind",) + (("control_bind",) if self.control_bind else ()) + (("address",) if self.address else ()):
            try:
                ipaddress.ip_address(getattr(self, fname))
            except ValueError:
                raise ValueError(f"{fname} must be an IP address, got {getattr(self, fname)!r}") from None
        if not isinstance(self.port, int) or not 0 <= self.port < 65536:
            raise ValueError(f"port must be in 0..65535, got {self.port!r}")
        if self.control_port is not None and (not isinstance(self.control_port, int) or not 0 <= self.control_port < 65536):
            raise ValueError(f"control_port must be in 0..65535 or null, got {self.control_port!r}")
        if self.control_port is not None and not self.control_token and \
                not ipaddress.ip_address(self.control_bind or self.bind).is_loopback:
            # mutating calls are open without a token: only the local machine may reach them
            raise ValueError(f"control_token is required when the control API binds to "
                             f"{self.control_bind or self.bind} (not loopback); set control_token "
                             f"(or --token-file) or bind control_bind to 127.0.0.1")
        try:
            if len(bytes.fromhex(self.magic)) != 4:
                raise ValueError
        except (ValueError, TypeError):
            raise ValueError(f"magic must be 8 hex digits, got {self.magic!r}") from None
        for name in ("connect", "addnode"):
            for i, c in enumerate(getattr(self, name)):
                try:
                    parse_endpoint(c)
                except ValueError as e:
                    raise ValueError(f"{name}[{i}] {c!r} is not ip:port ({e})") from None
        if self.relay_policy not in RELAY_POLICIES:
            raise ValueError(f"relay_policy must be one of {RELAY_POLICIES}, got {self.relay_policy!r}")
        self.dandelion.validate()
        if not isinstance(self.services, int) or self.services < 0:
            raise ValueError(f"services must be a non-negative integer, got {self.services!r}")
        if not isinstance(self.start_height, int) or self.start_height < 0:
            raise ValueError(f"start_height must be a non-negative integer, got {self.start_height!r}")
        if not isinstance(self.time_scale, (int, float)) or self.time_scale <= 0:
            raise ValueError(f"time_scale must be > 0, got {self.time_scale!r}")
        unknown = set(self.timers) - set(CORE_TIMERS)
        if unknown:
            raise ValueError(f"timers: unknown name(s) {sorted(unknown)}; known: {sorted(CORE_TIMERS)}")
        for k, v in self.timers.items():
            if not isinstance(v, (int, float)) or v < 0:
                raise ValueError(f"timers.{k} must be a number >= 0, got {v!r}")
        for i, net in enumerate(self.allowlist):
            try:
                ipaddress.ip_network(net, strict=False)
            except ValueError:
                raise ValueError(f"allowlist[{i}] {net!r} is not a CIDR network") from None
        for fname in ("max_mempool_mb", "max_orphan_blocks_mb", "max_stale_blocks_mb"):
            v = getattr(self, fname)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v < 1_000_000:
                raise ValueError(f"{fname} must be a number of megabytes > 0, got {v!r}")
        if self.misbehaviour_policy not in MISBEHAVIOUR_POLICIES:
            raise ValueError(f"misbehaviour_policy must be one of {MISBEHAVIOUR_POLICIES}, "
                             f"got {self.misbehaviour_policy!r}")
        self._validate_addresses()
        if not isinstance(self.capture, bool):
            raise ValueError(f"capture must be true or false, got {self.capture!r}")
        if not isinstance(self.capture_max_bytes, int) or self.capture_max_bytes < MIN_MAX_BYTES:
            raise ValueError(f"capture_max_bytes must be an integer >= {MIN_MAX_BYTES}, got {self.capture_max_bytes!r}")
        self.link.validate()
        self.regions.validate()
        self.bandwidth.validate()
        if not isinstance(self.clock_skew, (int, float)) or abs(self.clock_skew) > MAX_CLOCK_SKEW:
            raise ValueError(f"clock_skew must be a number of seconds within +-{MAX_CLOCK_SKEW:g}, got {self.clock_skew!r}")
        if not isinstance(self.extra, dict):
            raise ValueError("extra must be a mapping")

    def _validate_addresses(self) -> None:
        if not isinstance(self.endpoints, dict):
            raise ValueError("endpoints must be a mapping of planned ip -> \"host:port\"")
        for ip, ep in self.endpoints.items():
            try:
                ipaddress.ip_address(ip)
            except ValueError:
                raise ValueError(f"endpoints: key {ip!r} is not an IP address") from None
            try:
                if not isinstance(ep, str):
                    raise ValueError("not a string")
                parse_endpoint(ep)
            except ValueError as e:
                raise ValueError(f"endpoints[{ip!r}] {ep!r} is not ip:port ({e})") from None
        if not isinstance(self.inbound_hosts, dict):
            raise ValueError("inbound_hosts must be a mapping of transport ip -> [planned ip, ...]")
        for ip, planned in self.inbound_hosts.items():
            try:
                ipaddress.ip_address(ip)
            except ValueError:
                raise ValueError(f"inbound_hosts: key {ip!r} is not an IP address") from None
            if not isinstance(planned, list) or not planned:
                raise ValueError(f"inbound_hosts[{ip!r}] must be a non-empty list of planned IP addresses")
            for i, p in enumerate(planned):
                try:
                    ipaddress.ip_address(p)
                except (ValueError, TypeError):
                    raise ValueError(f"inbound_hosts[{ip!r}][{i}] {p!r} is not an IP address") from None

    # --- derived values ------------------------------------------------------------------------

    @property
    def magic_bytes(self) -> bytes:
        return bytes.fromhex(self.magic)

    def make_timers(self) -> Timers:
        return Timers.scaled(self.time_scale, **self.timers)

    @property
    def protocol_address(self) -> str:
        """Our planned address: the one peers know us by."""
        return self.address or self.bind

    def endpoint_of(self, ip: str, port: int) -> tuple[str, int]:
        """Where to dial to reach planned address ip:port (itself unless `endpoints` says otherwise)."""
        ep = self.endpoints.get(ip)
        return parse_endpoint(ep, port) if ep else (ip, port)

    @property
    def connect_endpoints(self) -> list[tuple[str, int]]:
        """The manual peers: -connect and -addnode ones."""
        return [parse_endpoint(c) for c in self.connect + self.addnode]

    # --- (de)serialisation ---------------------------------------------------------------------

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "NodeConfig":
        return from_mapping(cls, data, "node config")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_file(cls, path: str | pathlib.Path) -> "NodeConfig":
        return cls.from_dict(load_file(path))


def load_file(path: str | pathlib.Path) -> Any:
    """Parse a JSON (.json) or YAML (anything else) file."""
    p = pathlib.Path(path)
    text = p.read_text()
    if p.suffix == ".json":
        return json.loads(text)
    import yaml  # lazy: keeps a JSON-configured node lighter

    return yaml.safe_load(text)


def load_host_configs(path: str | pathlib.Path, control_token: str | None = None) -> list[NodeConfig]:
    """A host file: a list of node configs, or {"defaults": {...}, "nodes": [...]}. `control_token`
    (from a token file) replaces every node's before validation, which requires one off loopback."""
    data = load_file(path)
    defaults: dict[str, Any] = {}
    if isinstance(data, dict):
        defaults = data.get("defaults", {}) or {}
        data = data.get("nodes")
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a list of node configs (or a mapping with 'nodes')")
    override = {"control_token": control_token} if control_token else {}
    return [NodeConfig.from_dict({**defaults, **item, **override}) for item in data]
