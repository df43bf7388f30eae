"""`harness-node bitcoind CONFIG`: run a real bitcoind as a harness member.

The process starts bitcoind as its child, waits for its RPC, and serves the harness control API
on the member's planned address, answering from bitcoind's RPC: so the controller, `harness status`,
checks and reports observe it exactly like a light node (docs/bitcoind.md):

    GET  /status        getblockchaininfo + getpeerinfo (+ getrawmempool size)
    GET  /tx/{txid}     first seen here: this process polls getrawmempool every `poll_interval`
    GET  /block/{hash}  first seen here: polled tip changes, walked back to a known block
    GET  /bans          listbanned
    GET  /mempool       getrawmempool
    GET  /misbehaviour  what bitcoind did to its peers (scores, bans, disconnects), from getpeerinfo and
                        listbanned polled every 0.1 s, in the light node's format (conduct.py)
    GET  /metrics       harness_bitcoind_* from the same polls (conduct.py)
    GET  /capture       message capture state; POST /capture {"on": bool} starts or stops it: its
                        traffic read off the interface (sniff.py), in the light node's capture files
    POST /fund          mine 101 blocks once so a coinbase is spendable; {"tip", "height", "mined"}
                        (the harness funds every bitcoind member before the run counts as ready)
    POST /tx            {"synthetic": true}: a wallet payment (sendtoaddress to itself)
    POST /block         generatetoaddress 1

On SIGTERM (the backend's `down`) it asks bitcoind to stop by RPC and waits for it; bitcoind is in
the same process group, so a SIGKILL of the group leaves nothing behind either.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import CollectorRegistry

from ..controlauth import bearer_ok
from ..net.capture import CAPTURE_DIR, MessageCapture
from ..tokenfile import read_token_file
from ..transportfile import read_transport_file, resolve_table
from .conduct import PEER_POLL_S, Conduct, ConductCollector, LogTail
from .launch import RPC, RPC_WARMUP_ERROR, BitcoindConfig, RPCError, command, flavour, write_conf
from .sniff import Sniffer, available

COINBASE_MATURITY = 100  # consensus: a coinbase is spendable 100 blocks later
PAYMENT_BTC = 0.001
START_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 30.0


class Member:
    def __init__(self, config: BitcoindConfig) -> None:
        self.config = config
        self.rpc = RPC(config.address, config.rpc_port, config.control_token)
        self.proc: subprocess.Popen[bytes] | None = None
        self.tx_seen: dict[str, int] = {}  # txid -> first seen (ns since the epoch)
        self.block_seen: dict[str, int] = {}
        self.tip: str | None = None
        self.wallet_address: str | None = None
        self._wallet_lock = asyncio.Lock()
        self.conduct = Conduct(config.planned)
        self.debug_log: LogTail | None = None  # found once bitcoind has created it
        self._log_lines: list[str] = []
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(ConductCollector(config.name, self.conduct))
        self.sniffer: Sniffer | None = None

    async def call(self, method: str, *params: Any) -> Any:
        return await asyncio.to_thread(self.rpc, method, *params)

    # --- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        kind = flavour(self.config.binary)
        write_conf(self.config)
        log = open(Path(self.config.datadir) / "stdout.log", "ab")
        self.proc = subprocess.Popen(command(self.config, kind), stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        log.close()
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"bitcoind exited with {self.proc.returncode} while starting; "
                                   f"see {self.config.datadir}/regtest/bitcoind.log")
            try:
                self.tip = await self.call("getbestblockhash")
                break
            except RPCError as e:
                if e.code != RPC_WARMUP_ERROR:
                    raise
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"bitcoind RPC not answering after {START_TIMEOUT_S:.0f} s")
            await asyncio.sleep(0.1)

    # --- message capture ---------------------------------------------------------------------------

    def set_capture(self, on: bool) -> dict[str, Any]:
        """Start or stop capturing its messages (sniff.py) under <datadir>/message_capture, as a light
        node does; ValueError (409) where no packet socket can be opened."""
        if on and self.sniffer is None:
            why = available(self.config.capture_interface)
            if why is not None:
                raise ValueError(f"cannot capture {self.config.name}'s messages: {why}")
            capture = MessageCapture(Path(self.config.datadir) / CAPTURE_DIR, self.config.capture_max_bytes)
            try:
                connect = [(p.rpartition(":")[0], int(p.rpartition(":")[2])) for p in self.config.connect]
                self.sniffer = Sniffer(capture, self.config.capture_interface, (self.config.address, self.config.port),
                                       connect, lambda: self.proc.pid if self.proc else None,
                                       bytes.fromhex(self.config.magic),
                                       (self.config.rpc_port, self.config.control_port)).start()
            except BaseException:
                capture.close()
                raise
        elif not on and self.sniffer is not None:
            sniffer, self.sniffer = self.sniffer, None
            sniffer.stop()
            sniffer.capture.close()
        return self.capture_info()

    def capture_info(self) -> dict[str, Any]:
        if self.sniffer is None:
            return {"on": False}
        return {"on": True, **self.sniffer.capture.info(), **self.sniffer.info()}

    async def stop(self) -> None:
        if self.sniffer is not None:
            self.set_capture(False)
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        try:
            await self.call("stop")
        except (OSError, RPCError):
            proc.terminate()
        try:
            await asyncio.to_thread(proc.wait, STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            await asyncio.to_thread(proc.wait)

    async def watch(self) -> None:
        """First-seen times of txs and blocks, at the resolution of the poll interval; every
        PEER_POLL_S, what it did to its peers and its figures (conduct.py)."""
        next_peers = 0.0
        while True:
            try:
                if time.monotonic() >= next_peers:
                    next_peers = time.monotonic() + PEER_POLL_S
                    await self._poll_conduct()
                now = time.time_ns()
                for txid in await self.call("getrawmempool"):
                    self.tx_seen.setdefault(txid, now)
                tip = await self.call("getbestblockhash")
                if tip != self.tip:
                    await self._walk_back(tip, now)
                    self.tip = tip
            except (OSError, RPCError):
                pass  # bitcoind busy or stopping: the next round tries again
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"bitcoind exited with {self.proc.returncode}")
            await asyncio.sleep(self.config.poll_interval)

    async def _poll_conduct(self) -> None:
        # the log first: a peer charged in it is then in getpeerinfo unless it has really left
        if self.debug_log is None:  # Core writes debug.log, Bitcoin SV bitcoind.log
            found = [p for p in (Path(self.config.datadir) / "regtest" / n for n in ("debug.log", "bitcoind.log")) if p.exists()]
            self.debug_log = LogTail(found[0]) if found else None
        if self.debug_log is not None:  # kept until an update takes them: an RPC error must not lose them
            self._log_lines += await asyncio.to_thread(self.debug_log.lines)
        peers = await self.call("getpeerinfo")
        banned = await self.call("listbanned")
        mempool = await self.call("getmempoolinfo")
        self.conduct.update(peers, banned, mempool, await self.call("getblockcount"), self._log_lines)
        self._log_lines = []

    async def _walk_back(self, tip: str, now: int) -> None:
        block: str | None = tip
        while block and block not in self.block_seen and block != self.tip:
            self.block_seen[block] = now
            header = await self.call("getblockheader", block)
            for txid in (await self.call("getblock", block)).get("tx", []):
                self.tx_seen.setdefault(txid, now)
            block = header.get("previousblockhash")

    # --- what the control API answers ------------------------------------------------------------

    async def status(self) -> dict[str, Any]:
        """`/status` in the light node's shape. getpeerinfo has no handshake flag: a peer counts as
        handshaken once its version arrived (`version` is 0 until then; the verack comes with it)."""
        chain = await self.call("getblockchaininfo")
        peers = await self.call("getpeerinfo")
        mempool = await self.call("getrawmempool")
        return {
            "id": self.config.name, "address": f"{self.config.identity or self.config.address}:{self.config.port}",
            "kind": "bitcoind",
            "height": chain["blocks"], "tip": chain["bestblockhash"], "mempool": len(mempool),
            "peers": [{"id": p.get("id"), "address": f"{self.config.planned(p['addr'])}:{p['addr'].rsplit(':', 1)[-1]}", "direction": "inbound" if p.get("inbound") else "outbound",
                       "kind": "inbound" if p.get("inbound") else "manual", "user_agent": p.get("subver", ""),
                       "services": int(p.get("services", "0"), 16), "version": p.get("version"),
                       "connected_time": p.get("conntime"), "misbehaviour_score": p.get("banscore", 0),
                       "handshake_done": bool(p.get("version")), "ping_s": p.get("pingtime")} for p in peers],
        }

    async def bans(self) -> list[dict[str, Any]]:
        return [{"address": b["address"].split("/")[0], "reason": b.get("ban_reason", "bitcoind"),
                 "until": b.get("banned_until"), "created": b.get("ban_created"), "kind": "ban"}
                for b in await self.call("listbanned")]

    async def fund(self) -> dict[str, Any]:
        """Make the wallet able to pay: mine 101 blocks once so a coinbase is spendable (none when it
        already can). The harness asks every bitcoind member in turn while the run gets ready
        (harness/backends/funding.py). Returns the tip and how many blocks this call mined."""
        async with self._wallet_lock:
            mined = await self._mature()
            tip = await self.call("getbestblockhash")
            height = await self.call("getblockcount")
        return {"tip": tip, "height": height, "mined": mined}

    async def _mature(self) -> int:
        if await self.call("getbalance") >= PAYMENT_BTC * 2:
            return 0
        await self.call("generatetoaddress", COINBASE_MATURITY + 1, await self._address())
        return COINBASE_MATURITY + 1

    async def _address(self) -> str:
        if self.wallet_address is None:
            self.wallet_address = await self.call("getnewaddress")
        return self.wallet_address

    async def pay(self) -> str:
        """A wallet transaction paying itself (funded first if the harness has not funded it: a
        member restarted with a wiped data dir)."""
        async with self._wallet_lock:
            await self._mature()
            txid = await self.call("sendtoaddress", await self._address(), PAYMENT_BTC)
        self.tx_seen.setdefault(txid, time.time_ns())
        return txid

    async def mine(self) -> str:
        (block,) = await self.call("generatetoaddress", 1, await self._address())
        self.block_seen.setdefault(block, time.time_ns())
        return block


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def make_app(member: Member) -> web.Application:
    token = member.config.control_token

    @web.middleware
    async def guard(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.method in ("POST", "DELETE", "PUT") and not bearer_ok(request.headers, token):
            return _error(401, "missing or wrong bearer token")
        try:
            return await handler(request)
        except RPCError as e:
            return _error(502, str(e))

    def seen(table: dict[str, int], key: str) -> web.Response:
        ident = key.lower()
        try:
            if len(bytes.fromhex(ident)) != 32:
                raise ValueError
        except ValueError:
            return _error(400, f"{key!r} is not a 64-digit hex hash")
        first = table.get(ident)
        if first is None:
            return _error(404, "not seen")
        return web.json_response({"hash": ident, "first_seen_ns": first, "from_peer": None,
                                  "origin_ns": None, "propagation_delay_s": None})

    routes = web.RouteTableDef()

    @routes.get("/status")
    async def status(request: web.Request) -> web.Response:
        return web.json_response(await member.status())

    @routes.get("/tx/{txid}")
    async def tx(request: web.Request) -> web.Response:
        return seen(member.tx_seen, request.match_info["txid"])

    @routes.get("/block/{hash}")
    async def block(request: web.Request) -> web.Response:
        return seen(member.block_seen, request.match_info["hash"])

    @routes.get("/bans")
    async def bans(request: web.Request) -> web.Response:
        return web.json_response({"bans": await member.bans()})

    @routes.get("/mempool")
    async def mempool(request: web.Request) -> web.Response:
        txids = await member.call("getrawmempool")
        return web.json_response({"size": len(txids), "txids": txids})

    @routes.get("/misbehaviour")
    async def misbehaviour(request: web.Request) -> web.Response:
        return web.json_response(list(member.conduct.log))

    @routes.get("/metrics")
    async def metrics(request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(member.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    @routes.get("/capture")
    async def get_capture(request: web.Request) -> web.Response:
        return web.json_response(member.capture_info())

    @routes.post("/capture")
    async def post_capture(request: web.Request) -> web.Response:
        on = json.loads(await request.text() or "{}").get("on")
        if not isinstance(on, bool):
            return _error(400, "'on' must be true or false")
        try:
            return web.json_response(await asyncio.to_thread(member.set_capture, on))
        except (ValueError, OSError) as e:
            return _error(409, str(e))

    @routes.post("/tx")
    async def post_tx(request: web.Request) -> web.Response:
        body = json.loads(await request.text() or "{}")
        if body.get("synthetic") is not True:
            return _error(400, "a bitcoind member sends wallet payments only: {\"synthetic\": true}")
        return web.json_response({"txid": await member.pay(), "accepted": True})

    @routes.post("/fund")
    async def post_fund(request: web.Request) -> web.Response:
        return web.json_response(await member.fund())

    @routes.post("/block")
    async def post_block(request: web.Request) -> web.Response:
        return web.json_response({"hash": await member.mine()})

    app = web.Application(middlewares=[guard])
    app.add_routes(routes)
    return app


async def serve(config: BitcoindConfig) -> None:
    member = Member(config)
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    runner = web.AppRunner(make_app(member), access_log=None, handle_signals=False)
    try:
        if config.capture:  # before bitcoind starts: its first connections are recorded from their SYN
            member.set_capture(True)
        await member.start()
        await runner.setup()
        await web.TCPSite(runner, config.address, config.control_port).start()
        watcher = asyncio.ensure_future(member.watch())
        done, _ = await asyncio.wait([watcher, asyncio.ensure_future(stopping.wait())],
                                     return_when=asyncio.FIRST_COMPLETED)
        watcher.cancel()
        if watcher in done and watcher.exception() is not None:
            raise watcher.exception()  # type: ignore[misc]
    finally:
        await runner.cleanup()
        await member.stop()


def run(config_path: str, token_file: str | None = None, transport: str | None = None) -> int:
    token = read_token_file(token_file) if token_file else None
    table = None
    if transport:
        endpoints, inbound, missing = resolve_table(read_transport_file(transport))
        if missing:  # the member's own log: peers it cannot dial or name are worth a line
            print(f"harness-node bitcoind: {len(missing)} name(s) of {transport} did not resolve, e.g. {missing[0]}",
                  file=sys.stderr)
        table = (endpoints, inbound)
    asyncio.run(serve(BitcoindConfig.from_file(config_path, token=token, transport=table)))
    return 0
