"""`harness-node`: the node's console script (argparse keeps the process light).

Subcommands are registered in SUBCOMMANDS as "module:function" strings; each function receives the
argparse subparsers object and adds its parser with `set_defaults(func=...)`. Adding a subcommand
(e.g. the seeder) is one line here. `func(args)` returns the exit code.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import pathlib
import sys
from typing import Any

from .config import NodeConfig, load_file, load_host_configs
from .names import RELAY_POLICIES
from .tokenfile import read_token_file
from .transportfile import read_transport_file, resolve_table

SUBCOMMANDS: dict[str, str] = {
    "run": "harness_node.cli:register_run",
    "host": "harness_node.cli:register_host",
    "seeder": "harness_node.seeder.cli:register",
    "attack": "harness_node.attack.cli:register",
    "bitcoind": "harness_node.bitcoind.cli:register",
}

# --flag -> NodeConfig field, for `run` overrides of the config file
_RUN_OVERRIDES = {"name": "name", "bind": "bind", "port": "port", "magic": "magic", "control_port": "control_port",
                  "control_bind": "control_bind", "relay_policy": "relay_policy", "datadir": "datadir",
                  "token": "control_token", "time_scale": "time_scale", "user_agent": "user_agent",
                  "seed": "seed", "misbehaviour_policy": "misbehaviour_policy"}


def register_run(sub: Any) -> None:
    p = sub.add_parser("run", help="run one node (the container entry point)")
    p.add_argument("--config", help="YAML/JSON node config file")
    p.add_argument("--name")
    p.add_argument("--bind", help="P2P listen address")
    p.add_argument("--port", type=int, help="P2P port (default 18444)")
    p.add_argument("--magic", help="network magic, 8 hex digits (regtest fabfb5da)")
    p.add_argument("--connect", action="append", default=None, metavar="IP:PORT",
                   help="connect only to this peer, no automatic peers (repeatable, like -connect)")
    p.add_argument("--addnode", action="append", default=None, metavar="IP:PORT",
                   help="keep this peer besides automatic ones (repeatable, like -addnode)")
    p.add_argument("--control-port", type=int)
    p.add_argument("--control-bind")
    p.add_argument("--relay-policy", choices=list(RELAY_POLICIES))
    p.add_argument("--datadir")
    p.add_argument("--token", help="bearer token for mutating control calls")
    p.add_argument("--time-scale", type=float)
    p.add_argument("--user-agent")
    p.add_argument("--seed", type=int)
    p.add_argument("--misbehaviour-policy", choices=["ban", "discourage", "disconnect"])
    p.set_defaults(func=cmd_run)


def run_config(args: argparse.Namespace) -> NodeConfig:
    data: dict[str, Any] = dict(load_file(args.config)) if args.config else {}
    for flag, field_name in _RUN_OVERRIDES.items():
        value = getattr(args, flag)
        if value is not None:
            data[field_name] = value
    for name in ("connect", "addnode"):
        if getattr(args, name):
            data[name] = list(data.get(name, [])) + getattr(args, name)
    return NodeConfig.from_dict(data)


def cmd_run(args: argparse.Namespace) -> int:
    from .host import run_host

    run_host([run_config(args)])
    return 0


def register_host(sub: Any) -> None:
    p = sub.add_parser("host", help="run many nodes in one process (local backend)")
    p.add_argument("--config", required=True, help="YAML/JSON file: a list of node configs, or {defaults, nodes}")
    p.add_argument("--token-file", help="file holding the control API bearer token of every node (e.g. a mounted "
                                        "Secret); overrides control_token in the config")
    p.set_defaults(func=cmd_host)


def host_configs(args: argparse.Namespace) -> list[NodeConfig]:
    configs = load_host_configs(args.config, read_token_file(args.token_file) if args.token_file else None)
    return with_transport(configs, pathlib.Path(args.config).parent)


def with_transport(configs: list[NodeConfig], base: pathlib.Path) -> list[NodeConfig]:
    """Nodes whose `extra.transport` names a transport file (relative to the config's directory)
    get its pod names resolved into their `endpoints` and `inbound_hosts` (transportfile.py)."""
    files = {c.extra["transport"] for c in configs if isinstance(c.extra.get("transport"), str)}
    resolved = {}
    for name in files:
        endpoints, inbound, missing = resolve_table(read_transport_file(base / name))
        if missing:  # the process's own log: a node that cannot dial these is worth a line
            print(f"harness-node: {len(missing)} name(s) of {name} did not resolve, e.g. {missing[0]}", file=sys.stderr)
        resolved[name] = (endpoints, inbound)
    return [_transported(c, *resolved[c.extra["transport"]]) if c.extra.get("transport") in resolved else c
            for c in configs]


def _transported(config: NodeConfig, endpoints: dict[str, str], inbound: dict[str, list[str]]) -> NodeConfig:
    """The table's entries (the config's own win), and its resolved IPs, one /32 each, added to the
    dial allowlist: the sandbox checks the transport IP a dial goes to as well as the planned one,
    and these IPs are the testnet's pods, nothing else."""
    pods = sorted({ep.rpartition(":")[0] for ep in endpoints.values()})
    return dataclasses.replace(config, endpoints={**endpoints, **config.endpoints},
                               inbound_hosts={**inbound, **config.inbound_hosts},
                               allowlist=[*config.allowlist, *(f"{ip}/32" for ip in pods)])


def cmd_host(args: argparse.Namespace) -> int:
    from .host import run_host

    run_host(host_configs(args))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="harness-node", description="Lightweight Bitcoin P2P node for the harness.")
    sub = parser.add_subparsers(dest="command", required=True)
    for target in SUBCOMMANDS.values():
        module, _, func = target.partition(":")
        getattr(importlib.import_module(module), func)(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, OSError) as e:
        print(f"harness-node: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
