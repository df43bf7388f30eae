"""`harness-node bitcoind CONFIG`: argument parsing only; the service is imported when it runs."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    """Add `bitcoind` to harness-node's subcommands (harness_node/cli.py SUBCOMMANDS protocol)."""
    p = sub.add_parser("bitcoind", help="run a real bitcoind as a member, serving the control API from its RPC")
    p.add_argument("config", help="member config (JSON, written by the harness's backend)")
    p.add_argument("--token-file", help="file holding the control token (and RPC password); overrides control_token")
    p.add_argument("--transport", help="transport table file (Kubernetes: transport.json, pod DNS names): the "
                                       "config's planned `connect` peers are dialled where it says, and the peers "
                                       "bitcoind reports are named by their planned addresses")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from .service import run

    return run(args.config, token_file=args.token_file, transport=args.transport)
