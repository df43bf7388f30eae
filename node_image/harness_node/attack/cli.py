"""`harness-node attack --config F [--token-file T]`: run the attacker identities of F."""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from ..tokenfile import read_token_file


def register(sub: Any) -> None:
    p = sub.add_parser("attack", help="run attacker identities (spam, eclipse, ...) from one config file")
    p.add_argument("--config", required=True, help="YAML/JSON attacker config (docs/attackers.md)")
    p.add_argument("--token-file", help="file holding the control API bearer token; overrides control_token")
    p.set_defaults(func=cmd_attack)


def attack_config(args: argparse.Namespace) -> Any:
    from .config import AttackConfig
    from ..config import load_file

    data = load_file(args.config)
    if args.token_file and isinstance(data, dict):
        data = {**data, "control_token": read_token_file(args.token_file)}
    return AttackConfig.from_dict(data)


def cmd_attack(args: argparse.Namespace) -> int:
    from .kinds import load_kinds
    from .runtime import run_attackers

    load_kinds()
    run_attackers(attack_config(args))
    return 0
