"""`harness-node seeder`: argument parsing only; the seeder itself is imported when it runs."""

from __future__ import annotations

import argparse
from typing import Any

from .args import build_parser


def register(sub: Any) -> None:
    """Add `seeder` to harness-node's subcommands (harness_node/cli.py SUBCOMMANDS protocol)."""
    p = sub.add_parser("seeder", help="run the private DNS seeder (crawler + DNS server + control API)")
    build_parser(p)
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from .service import run_from_args

    return run_from_args(args)
