"""SeederConfig: every setting of the DNS seeder role, validated up front.

Defaults follow sipa/bitcoin-seeder (protocol.md §6) adapted to the testbed: the zone is
`seed.testnet.`, the crawler dials only inside the sandbox allowlist (testbed adaptation 6) and every
timer scales with `time_scale` (adaptation 5).
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..dictconfig import from_mapping
from ..timing import Timers
from .modes import ModeError, make_mode

DEFAULT_ZONE = "seed.testnet."
DEFAULT_DNS_HOST = "127.0.53.1"
DEFAULT_DNS_PORT = 53
DATA_TTL = 3600  # bitcoin-seeder main.cpp dns_opt.datattl
NS_TTL = 40_000  # bitcoin-seeder main.cpp dns_opt.nsttl
MAX_RECORDS = 32  # bitcoin-seeder dns.cpp: addr_t addr[32] requested per answer
UDP_PAYLOAD = 512  # dns.cpp BUFLEN; RFC 1035 UDP limit without EDNS
REQUIRE_VERSION = 70001  # bitcoin-seeder db.h REQUIRE_VERSION
REGTEST_PORT = 18444
SEEDER_USER_AGENT = "/harness-seeder:0.1/"
CRAWL_CONCURRENCY = 16  # sipa runs 96 threads; a testbed has tens of nodes, not 10^4
CACHE_MAX_AGE = 5.0  # main.cpp cacheHit: refresh a flag's cache when older than 5 s (and hit often)
WARMUP_SECONDS = 10.0  # adaptation 13: the longest a warm-up holds the honest answers back
WARMUP_SAMPLE = 100  # adaptation 13: judge the share answered over this many nodes at least (or every seed)


class SeederConfigError(ValueError):
    """A seeder setting that cannot work; the message names the setting."""


def parse_endpoint(text: str, default_port: int) -> tuple[str, int]:
    """`ip`, `ip:port`, `[v6]:port` or a bare IPv6 literal -> (ip, port); raises SeederConfigError."""
    text = text.strip()
    host, port = text, default_port
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if rest:
            if not rest.startswith(":"):
                raise SeederConfigError(f"bad endpoint {text!r}")
            port = _port(rest[1:], text)
    elif text.count(":") == 1:
        host, p = text.split(":")
        port = _port(p, text)
    try:
        ip = str(ipaddress.ip_address(host))
    except ValueError:
        raise SeederConfigError(f"bad endpoint {text!r}: {host!r} is not an IP address") from None
    return ip, port


def _port(text: str, whole: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise SeederConfigError(f"bad port in endpoint {whole!r}")
    return int(text)


@dataclass
class SeederConfig:
    # DNS side
    zone: str = DEFAULT_ZONE
    ns_name: str = ""  # defaults to ns.<zone>
    mbox: str = ""  # SOA RNAME; defaults to hostmaster.<zone>
    dns_host: str = DEFAULT_DNS_HOST
    dns_port: int = DEFAULT_DNS_PORT
    ttl: int = DATA_TTL
    ns_ttl: int = NS_TTL
    max_records: int = MAX_RECORDS
    udp_payload: int = UDP_PAYLOAD
    cache_max_age: float = CACHE_MAX_AGE
    # Testbed adaptation 13: honest answers wait until this share of the nodes judged have answered,
    # for at most warmup_seconds after the start (0: answer at once, as sipa)
    warmup_share: float = 0.0
    warmup_seconds: float = WARMUP_SECONDS
    # answer policy (modes.py)
    mode: str = "honest"
    mode_params: dict[str, Any] = field(default_factory=dict)
    # crawler
    crawl: bool = True
    seeds: list[str] = field(default_factory=list)  # entry nodes, "ip[:port]"
    static_nodes: list[str] = field(default_factory=list)  # served as good without crawling
    static_services: int = 9  # NODE_NETWORK | NODE_WITNESS for static nodes
    allowlist: list[str] = field(default_factory=lambda: ["127.0.0.0/8"])
    # planned ip -> "host:port" to dial instead (the node's `endpoints`, docs/backends.md §Addresses):
    # on Docker the planned 127.a.b.c addresses live in containers at other IPs. Empty: identity.
    endpoints: dict[str, str] = field(default_factory=dict)
    magic: str = "fabfb5da"  # regtest
    default_port: int = REGTEST_PORT
    required_height: int = 0
    required_version: int = REQUIRE_VERSION
    user_agent: str = SEEDER_USER_AGENT
    time_scale: float = 1.0
    retry_interval: float | None = None  # None: Timers.seeder_retry scaled
    timeout: float | None = None  # None: Timers.seeder_timeout scaled
    concurrency: int = CRAWL_CONCURRENCY
    crawl_rate: float = 0.0  # connection attempts per second, 0 = unlimited
    # control API
    control_host: str = ""  # defaults to dns_host
    control_port: int = 8053
    control_token: str | None = None

    def __post_init__(self) -> None:
        self.zone = self.zone.lower().rstrip(".") + "."
        if self.zone == ".":
            raise SeederConfigError("zone must not be the root")
        self.ns_name = self.ns_name or f"ns.{self.zone}"
        self.mbox = self.mbox or f"hostmaster.{self.zone}"
        self.control_host = self.control_host or self.dns_host
        self.validate()

    def require_token_off_loopback(self) -> None:
        """Mutating control calls are open without a token: only loopback may serve them so. Checked
        once the token file (if any) is applied."""
        if not self.control_token and not ipaddress.ip_address(self.control_host).is_loopback:
            raise SeederConfigError(f"control_token is required when the control API binds to {self.control_host} "
                                    f"(not loopback); set control_token (or --token-file) or control_host: 127.0.0.1")

    def validate(self) -> None:
        for name in ("dns_host", "control_host"):
            try:
                ipaddress.ip_address(getattr(self, name))
            except ValueError:
                raise SeederConfigError(f"{name} {getattr(self, name)!r} is not an IP address") from None
        for name in ("dns_port", "control_port", "default_port"):
            if not 0 <= getattr(self, name) < 65536:
                raise SeederConfigError(f"{name} must be 0..65535, got {getattr(self, name)}")
        if not 0 <= self.ttl < 2**31 or not 0 <= self.ns_ttl < 2**31:  # TTL 0: answers not cached (RFC 1035)
            raise SeederConfigError("ttl and ns_ttl must be 31-bit integers >= 0")
        if not 1 <= self.max_records <= 1000:
            raise SeederConfigError(f"max_records must be 1..1000, got {self.max_records}")
        if not 512 <= self.udp_payload <= 65535:
            raise SeederConfigError(f"udp_payload must be 512..65535, got {self.udp_payload}")
        if len(self.magic) != 8:
            raise SeederConfigError(f"magic must be 4 hex bytes, got {self.magic!r}")
        try:
            bytes.fromhex(self.magic)
        except ValueError:
            raise SeederConfigError(f"magic {self.magic!r} is not hex") from None
        if self.time_scale <= 0:
            raise SeederConfigError(f"time_scale must be > 0, got {self.time_scale}")
        if self.concurrency < 1:
            raise SeederConfigError(f"concurrency must be >= 1, got {self.concurrency}")
        if not 0 <= self.warmup_share <= 1:
            raise SeederConfigError(f"warmup_share must be 0..1, got {self.warmup_share}")
        if self.warmup_seconds < 0:
            raise SeederConfigError(f"warmup_seconds must be >= 0, got {self.warmup_seconds}")
        if self.crawl_rate < 0:
            raise SeederConfigError(f"crawl_rate must be >= 0, got {self.crawl_rate}")
        for name in ("retry_interval", "timeout"):
            v = getattr(self, name)
            if v is not None and v <= 0:
                raise SeederConfigError(f"{name} must be > 0, got {v}")
        try:
            make_mode(self.mode, self.mode_params)
        except ModeError as e:
            raise SeederConfigError(f"mode: {e}") from None
        self.allow_networks  # noqa: B018 -- parse now so that a typo fails at start
        self.seed_endpoints
        self.static_endpoints

    # --- derived values ---------------------------------------------------------------------

    @property
    def magic_bytes(self) -> bytes:
        return bytes.fromhex(self.magic)

    @property
    def allow_networks(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        try:
            return [ipaddress.ip_network(n, strict=False) for n in self.allowlist]
        except ValueError as e:
            raise SeederConfigError(f"allowlist: {e}") from None

    @property
    def seed_endpoints(self) -> list[tuple[str, int]]:
        return [parse_endpoint(s, self.default_port) for s in self.seeds]

    @property
    def static_endpoints(self) -> list[tuple[str, int]]:
        return [parse_endpoint(s, self.default_port) for s in self.static_nodes]

    @property
    def timers(self) -> Timers:
        return Timers.scaled(self.time_scale)

    @property
    def retry_seconds(self) -> float:
        return self.retry_interval if self.retry_interval is not None else self.timers.seeder_retry

    @property
    def timeout_seconds(self) -> float:
        return self.timeout if self.timeout is not None else self.timers.seeder_timeout

    # --- loading ----------------------------------------------------------------------------

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SeederConfig":
        return from_mapping(cls, data, "seeder config", SeederConfigError)

    @classmethod
    def from_file(cls, path: str | Path) -> "SeederConfig":
        """YAML or JSON; a top-level `seeder:` key is unwrapped so one scenario file can hold several roles."""
        p = Path(path)
        try:
            text = p.read_text()
        except OSError as e:
            raise SeederConfigError(f"cannot read seeder config {p}: {e.strerror}") from None
        if p.suffix == ".json":
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text) or {}
        if not isinstance(data, dict):
            raise SeederConfigError(f"{p}: expected a mapping of settings")
        if set(data) == {"seeder"}:
            data = data["seeder"]
        return cls.from_dict(data)
