"""The attacker process's configuration: `harness-node attack --config F`.

    {"magic": "fabfb5da", "time_scale": 1.0, "control_token": "...", "endpoints": {},
     "attackers": [{"name": "spam-0", "kind": "spam", "address": "127.100.0.1", "port": 18444,
                    "control_port": 18445, "targets": ["127.1.0.1:18444"], "target_names": ["node-0"],
                    "params": {...the kind's typed params...}}]}

`address` is the identity's planned (protocol) address: it binds it before dialling, so on loopback
every identity dials from its own netgroup. `bind` (default: `address`) is the transport source IP
where the two differ; then `version`'s `addr_from` names the planned address (docs/node.md).
`endpoints` maps a target's planned IP to the "host:port" to dial instead, as for nodes.
Unknown keys are refused, here and in every kind's params (registry.ATTACKS).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

from ..config import load_file, parse_endpoint
from ..controlauth import require_token_off_loopback
from ..dictconfig import from_mapping
from ..wire.codec import MAGIC_REGTEST


class AttackConfigError(ValueError):
    """A bad attacker config; the message names the field."""


@dataclass
class AttackerSpec:
    name: str
    kind: str
    address: str  # planned protocol address: what the victims see, ban and report
    port: int = 18444  # planned P2P port (named in addr_from)
    bind: str | None = None  # transport source IP to dial from; default: address
    control_port: int | None = None  # this identity's control API (on control_bind or bind)
    control_bind: str | None = None
    targets: list[str] = field(default_factory=list)  # planned "ip:port" of the victims
    target_names: list[str] = field(default_factory=list)  # their node names, same order (for reports)
    params: dict[str, Any] = field(default_factory=dict)  # the kind's params, typed by registry.ATTACKS
    group: str | None = None  # the scenario's attacker entry: the metrics' `attacker` label (default: name)

    @property
    def source_ip(self) -> str:
        return self.bind or self.address

    @property
    def control_host(self) -> str:
        return self.control_bind or self.source_ip


@dataclass
class AttackConfig:
    attackers: list[AttackerSpec]
    magic: str = MAGIC_REGTEST.hex()
    time_scale: float = 1.0
    control_token: str | None = None
    endpoints: dict[str, str] = field(default_factory=dict)  # planned ip -> "host:port" to dial instead

    @property
    def magic_bytes(self) -> bytes:
        return bytes.fromhex(self.magic)

    def dial_endpoint(self, target: str) -> tuple[str, int]:
        """Where to dial to reach planned target "ip:port"."""
        ip, port = parse_endpoint(target)
        ep = self.endpoints.get(ip)
        return parse_endpoint(ep, port) if ep else (ip, port)

    @classmethod
    def from_dict(cls, data: Any) -> "AttackConfig":
        if not isinstance(data, dict):
            raise AttackConfigError(f"the attacker config must be a mapping, got {type(data).__name__}")
        raw = dict(data)
        specs = raw.pop("attackers", None)
        if not isinstance(specs, list) or not specs:
            raise AttackConfigError("attackers: must be a non-empty list of attacker identities")
        attackers = [from_mapping(AttackerSpec, s, f"attackers[{i}]", AttackConfigError) for i, s in enumerate(specs)]
        config = from_mapping(cls, {**raw, "attackers": attackers}, "attacker config", AttackConfigError)
        config.validate()
        return config

    def validate(self) -> None:
        try:
            if len(self.magic_bytes) != 4:
                raise ValueError
        except ValueError:
            raise AttackConfigError(f"magic: must be 8 hex digits, got {self.magic!r}") from None
        if not self.time_scale > 0:
            raise AttackConfigError(f"time_scale: must be > 0, got {self.time_scale}")
        names = [a.name for a in self.attackers]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise AttackConfigError(f"attackers: names must be unique; repeated: {dupes}")
        for i, a in enumerate(self.attackers):
            where = f"attackers[{i}] ({a.name})"
            for key in ("address", "bind", "control_bind"):
                value = getattr(a, key)
                if value is None:
                    continue
                try:
                    ipaddress.ip_address(value)
                except ValueError:
                    raise AttackConfigError(f"{where}.{key}: {value!r} is not an IP address") from None
            for j, t in enumerate(a.targets):
                try:
                    parse_endpoint(t)
                except ValueError as e:
                    raise AttackConfigError(f"{where}.targets[{j}]: {e}") from None
            if a.target_names and len(a.target_names) != len(a.targets):
                raise AttackConfigError(f"{where}.target_names: one name per target ({len(a.targets)}), "
                                        f"got {len(a.target_names)}")
            if a.control_port is not None:
                try:
                    require_token_off_loopback(a.control_host, self.control_token, where)
                except ValueError as e:
                    raise AttackConfigError(str(e)) from None
        for ip, ep in self.endpoints.items():
            try:
                ipaddress.ip_address(ip)
                parse_endpoint(ep)
            except ValueError as e:
                raise AttackConfigError(f"endpoints[{ip!r}]: {e}") from None


def load_attack_config(path: str) -> AttackConfig:
    return AttackConfig.from_dict(load_file(path))
