"""`harness-node seeder`: argument parsing only; the seeder itself is imported when it runs."""

from __future__ import annotations

import argparse
from typing import Any


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    parser = parser or argparse.ArgumentParser(prog="harness-node seeder", description="Run the DNS seeder role.")
    parser.add_argument("--config", required=True, help="seeder config file (YAML or JSON)")
    parser.add_argument("--log-level", default="INFO", help="python logging level (default INFO)")
    parser.add_argument("--token-file", help="file holding the control API bearer token (e.g. a mounted Secret); "
                                             "overrides control_token in the config")
    return parser


def register(sub: Any) -> None:
    """Add `seeder` to harness-node's subcommands (harness_node/cli.py SUBCOMMANDS protocol)."""
    p = sub.add_parser("seeder", help="run the private DNS seeder (crawler + DNS server + control API)")
    build_parser(p)
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from .service import run_from_args

    return run_from_args(args)
