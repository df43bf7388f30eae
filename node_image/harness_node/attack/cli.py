"""`harness-node attack --config F [--token-file T] [--transport TABLE]`: run the attacker identities of F."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..tokenfile import read_token_file
from ..transportfile import read_transport_file, resolve_table


def register(sub: Any) -> None:
    p = sub.add_parser("attack", help="run attacker identities (spam, eclipse, ...) from one config file")
    p.add_argument("--config", required=True, help="YAML/JSON attacker config (docs/attackers.md)")
    p.add_argument("--token-file", help="file holding the control API bearer token; overrides control_token")
    p.add_argument("--transport", help="transport table file (Kubernetes: transport.json, pod DNS names): its "
                                       "`endpoints` are resolved and merged under the config's own")
    p.set_defaults(func=cmd_attack)


def attack_config(args: argparse.Namespace) -> Any:
    from .config import AttackConfig
    from ..config import load_file

    data = load_file(args.config)
    if args.token_file and isinstance(data, dict):
        data = {**data, "control_token": read_token_file(args.token_file)}
    if args.transport and isinstance(data, dict):
        data = {**data, "endpoints": {**transport_endpoints(args.transport), **dict(data.get("endpoints") or {})}}
    return AttackConfig.from_dict(data)


def transport_endpoints(path: str) -> dict[str, str]:
    """The table's `endpoints` with pod names resolved to IPs (as `harness-node host` does for
    nodes: transportfile.py); a name still unresolved at the deadline leaves that target undialled."""
    endpoints, _inbound, missing = resolve_table(read_transport_file(path))
    if missing:  # the process's own log: an identity that cannot dial these is worth a line
        print(f"harness-node attack: {len(missing)} name(s) of {path} did not resolve, e.g. {missing[0]}", file=sys.stderr)
    return endpoints


def cmd_attack(args: argparse.Namespace) -> int:
    from .kinds import load_kinds
    from .runtime import run_attackers

    load_kinds()
    run_attackers(attack_config(args))
    return 0
