"""HTTP/JSON control API. One aiohttp Application serves many nodes (host mode): each node has its
own listening socket (its 127.a.b.c:control_port) and a request is routed to the node whose socket
it arrived on (the transport's sockname).

Mutating calls (POST, DELETE) need `Authorization: Bearer <token>` when the node has a token
(request.py reads every request; chaos.py holds the network-emulation routes).
"""

from __future__ import annotations

import asyncio
import ipaddress
import math
import shutil
import socket
import time
from collections.abc import Callable
from io import BytesIO
from typing import Any

from aiohttp import web

from ..chain.chain import BlockInvalid
from ..config import parse_endpoint
from ..node import Node
from ..wire.codec import hash_to_hex
from ..wire.primitives import Block, Tx
from ..wire.synthetic import FILL_KINDS, MAX_SYNTHETIC_BLOCK
from . import chaos, items
from .metrics import exposition
from .request import NODES, SERVER, BadRequest, error_response, guard, hash_param, json_body, node_for, raw_hex

routes = web.RouteTableDef()


def _peer_list(request: web.Request, default: str) -> bool:
    peers = request.query.get("peers", default)
    if peers not in ("list", "counts"):
        raise BadRequest("peers must be list or counts")
    return peers == "list"


def _served(request: web.Request) -> list[Node]:
    """Every node this process serves that answers its own /status (not one stopped with
    keep_control, whose site answers 503)."""
    return [n for n in request.app[NODES].values() if not getattr(n, "kept_stopped", False)]


@routes.get("/status")
async def get_status(request: web.Request) -> web.Response:
    return web.json_response(node_for(request).status(peer_list=_peer_list(request, "list")))


# The /host/ routes answer for every node the process serves, by name ({"nodes": {name: answer}}),
# what the same path without /host/ answers for one: a host of 800 nodes is asked once instead of
# 800 times. At 10,000 nodes one `harness status` poll took 270 s, and the run's collector, asking
# each node for its status, bans and items every 2 s, sent 30,000 requests a poll.
HOST_SLICE_SECONDS = 0.02  # Python time an answer takes between two turns of the loop


async def _each_node(request: web.Request, answer: Callable[[Node], Any]) -> web.Response:
    """{"nodes": {name: answer(node)}} for every node served. The loop turns each time the answer
    has taken HOST_SLICE_SECONDS: 800 statuses with their peer lists are ~0.1 s of Python, which in
    one piece would hold every message of the process's nodes that long, at every poll. By time,
    not by a count of nodes: a turn waits behind everything else the loop has ready, seconds while
    10,000 nodes form their graph (host answers took 8–35 s then), and slices of 50 nodes made an
    800-node answer of peer counts (~40 ms of work) wait 16 turns where 2 do now."""
    out: dict[str, Any] = {}
    clock = time.perf_counter
    since = clock()
    for node in _served(request):
        if clock() - since >= HOST_SLICE_SECONDS:
            await asyncio.sleep(0)  # a turn of the loop, not a wait
            since = clock()
        out[node.name] = answer(node)
    return web.json_response({"nodes": out})


@routes.get("/host/status")
async def get_host_status(request: web.Request) -> web.Response:
    """?peers=counts (the default here) or list."""
    peer_list = _peer_list(request, "counts")
    return await _each_node(request, lambda n: n.status(peer_list=peer_list))


@routes.get("/host/ready")
async def get_host_ready(request: web.Request) -> web.Response:
    """{"nodes": {name: true}}: every node of this process whose control site is up (a node is added
    to the site only once its P2P listener is), which is what wait_ready asks of each node's GET
    /status, for the price of one request and no status built."""
    return await _each_node(request, lambda n: True)


@routes.get("/host/bans")
async def get_host_bans(request: web.Request) -> web.Response:
    return await _each_node(request, lambda n: n.list_bans())


@routes.get("/addrman")
async def get_addrman(request: web.Request) -> web.Response:
    """Occupied new and tried slots, and with `?networks=CIDR,CIDR` how many of them hold an
    address inside those networks (an attacker's share of the tables; selection draws slots, so
    slots, not distinct addresses, are what an eclipse attacker has to win)."""
    node = node_for(request)
    try:
        nets = [ipaddress.ip_network(n.strip(), strict=False)
                for n in request.query.get("networks", "").split(",") if n.strip()]
    except ValueError as e:
        raise BadRequest(f"networks: {e}") from None
    masks = [(n.version, int(n.netmask), int(n.network_address)) for n in nets]
    inside: dict[str, bool] = {}  # an address sits in many new slots: parse it once

    def matches(ip: str) -> bool:
        if ip not in inside:
            a = ipaddress.ip_address(ip)
            inside[ip] = any(v == a.version and int(a) & m == base for v, m, base in masks)
        return inside[ip]

    out: dict[str, Any] = {}
    for table, slots in (("new", node.connman.addrman.new_slots()), ("tried", node.connman.addrman.tried_slots())):
        out[table] = {"slots": len(slots), "matching": sum(1 for ip, _ in slots.values() if matches(ip)) if masks else 0}
    out["networks"] = [str(n) for n in nets]
    return web.json_response(out)


@routes.get("/mempool")
async def get_mempool(request: web.Request) -> web.Response:
    pool = node_for(request).mempool
    return web.json_response({"size": len(pool), "txids": [hash_to_hex(t) for t in pool.txs]})


@routes.get("/tx/{txid}")
async def get_tx(request: web.Request) -> web.Response:
    rec = items.tx_record(node_for(request), hash_param(request.match_info["txid"]))
    return error_response(404, "transaction not seen") if rec is None else web.json_response(rec)


@routes.get("/block/{hash}")
async def get_block(request: web.Request) -> web.Response:
    rec = items.block_record(node_for(request), hash_param(request.match_info["hash"]))
    return error_response(404, "block not seen") if rec is None else web.json_response(rec)


def _wanted_items(request: web.Request) -> dict[str, list[tuple[str, bytes]]]:
    """?tx=ID,ID&block=ID -> {kind: [(id as asked, hash)]}, at most MAX_ITEMS_PER_REQUEST ids."""
    wanted = {kind: [i for i in request.query.get(kind, "").split(",") if i] for kind in ("tx", "block")}
    if sum(map(len, wanted.values())) > items.MAX_ITEMS_PER_REQUEST:
        raise BadRequest(f"at most {items.MAX_ITEMS_PER_REQUEST} item ids per request")
    return {kind: [(i, hash_param(i)) for i in ids] for kind, ids in wanted.items()}


@routes.get("/items")
async def get_items(request: web.Request) -> web.Response:
    """?tx=ID,ID&block=ID: the records of many items at once ({"tx": {id: record}, "block": ...};
    an unseen item is absent)."""
    return web.json_response(items.records(node_for(request), _wanted_items(request)))


@routes.get("/host/items")
async def get_host_items(request: web.Request) -> web.Response:
    wanted = _wanted_items(request)
    return await _each_node(request, lambda n: items.records(n, wanted))


@routes.get("/capture")
async def get_capture(request: web.Request) -> web.Response:
    return web.json_response(node_for(request).capture_info())


@routes.post("/capture")
async def post_capture(request: web.Request) -> web.Response:
    """{"on": true|false}: start or stop message capture (docs/capture.md); answers its state."""
    on = (await json_body(request)).get("on")
    if not isinstance(on, bool):
        raise BadRequest("'on' must be true or false")
    try:
        return web.json_response(node_for(request).set_capture(on))
    except ValueError as e:
        return error_response(409, str(e))


@routes.post("/pause")
async def post_pause(request: web.Request) -> web.Response:
    node_for(request).pause()
    return web.json_response({"status": "paused"})


@routes.post("/resume")
async def post_resume(request: web.Request) -> web.Response:
    node_for(request).resume()
    return web.json_response({"status": "running"})


@routes.post("/shutdown")
async def post_shutdown(request: web.Request) -> web.Response:
    """Stop this node (its tables and anchors are saved) and free its ports; the host keeps the others.
    With {"keep_control": true} its control site stays, answering only POST /start (503 on /status):
    how a node packed in a pod, which no process or pod can be started for alone, is started again."""
    node: Node = node_for(request)
    server: ControlServer = request.app[SERVER]
    keep = (await json_body(request)).get("keep_control", False)
    if not isinstance(keep, bool):
        raise BadRequest("'keep_control' must be true or false")
    if keep:
        node.kept_stopped = True  # type: ignore[attr-defined]  # from now on the guard answers for it
        await node.stop()
        return web.json_response({"status": "stopped"})

    async def stop() -> None:
        await node.stop()
        await server.remove(node)

    # after the response has gone out: the request arrived on the site being removed
    asyncio.get_running_loop().call_later(0.05, lambda: asyncio.ensure_future(stop()))
    return web.json_response({"status": "stopping"}, status=202)


@routes.post("/restart")
async def post_restart(request: web.Request) -> web.Response:
    """Stop this node (its tables and anchors are saved) and start it again with the same config:
    same addresses and ports, the same data directory unless {"wipe_datadir": true}. Its control
    site stays up (this response leaves on it); the host's other nodes keep running. What a node
    packed in a pod has for a restart, where the pod cannot be restarted for one node."""
    node: Node = node_for(request)
    wipe = (await json_body(request)).get("wipe_datadir", False)
    if not isinstance(wipe, bool):
        raise BadRequest("'wipe_datadir' must be true or false")
    server: ControlServer = request.app[SERVER]
    asyncio.get_running_loop().call_later(0.05, lambda: asyncio.ensure_future(server.restart(node, wipe)))
    return web.json_response({"status": "restarting", "wipe_datadir": wipe}, status=202)


@routes.post("/start")
async def post_start(request: web.Request) -> web.Response:
    """Start again a node stopped with {"keep_control": true}: a fresh node of the same config on the
    same ports and control site, its data directory kept unless {"wipe_datadir": true}."""
    node: Node = node_for(request)
    wipe = (await json_body(request)).get("wipe_datadir", False)
    if not isinstance(wipe, bool):
        raise BadRequest("'wipe_datadir' must be true or false")
    if not getattr(node, "kept_stopped", False):
        return error_response(409, f"node {node.name} is not stopped (POST /restart restarts a running node)")
    server: ControlServer = request.app[SERVER]
    await server.restart(node, wipe)
    return web.json_response({"status": "running", "wipe_datadir": wipe})


@routes.post("/tx")
async def post_tx(request: web.Request) -> web.Response:
    node: Node = node_for(request)
    body = await json_body(request)
    if body.get("synthetic") is True:
        tx = node.inject_tx()
        return web.json_response({"txid": hash_to_hex(tx.txid), "accepted": True})
    if "raw" not in body:
        raise BadRequest("expected {\"synthetic\": true} or {\"raw\": \"<hex>\"}")
    tx = Tx.from_bytes(raw_hex(body))
    return web.json_response({"txid": hash_to_hex(tx.txid), "accepted": node.submit_tx(tx)})


@routes.post("/block")
async def post_block(request: web.Request) -> web.Response:
    node: Node = node_for(request)
    body = await json_body(request)
    unknown = set(body) - {"raw", "synthetic", "include_mempool", "size", "fill"}
    if unknown:
        raise BadRequest(f"unknown field(s) {sorted(unknown)}")
    if "raw" in body:
        f = BytesIO(raw_hex(body))
        block = Block.read(f)
        if f.read(1):
            raise BadRequest("trailing bytes after block")
        try:
            accepted = node.submit_block(block)
        except BlockInvalid as e:
            raise BadRequest(str(e)) from None
    else:
        include = body.get("include_mempool", True)
        if not isinstance(include, bool):
            raise BadRequest("'include_mempool' must be a boolean")
        size, fill = body.get("size"), body.get("fill", "txs")
        if size is not None and (isinstance(size, bool) or not isinstance(size, int)
                                 or not 0 < size <= MAX_SYNTHETIC_BLOCK):
            raise BadRequest(f"'size' must be a number of bytes in 1..{MAX_SYNTHETIC_BLOCK}")
        if fill not in FILL_KINDS:
            raise BadRequest(f"'fill' must be one of {list(FILL_KINDS)}")
        block, accepted = node.mine_block(include_mempool=include, size=size, fill=fill), True
    return web.json_response({"hash": hash_to_hex(block.hash), "height": node.chain.heights.get(block.hash),
                              "accepted": accepted})


@routes.post("/peers")
async def post_peer(request: web.Request) -> web.Response:
    node: Node = node_for(request)
    body = await json_body(request)
    address = body.get("address")
    if not isinstance(address, str):
        raise BadRequest("expected {\"address\": \"ip:port\"}")
    try:
        ip, port = parse_endpoint(address)
    except ValueError as e:
        raise BadRequest(f"bad address {address!r}: {e}") from None
    if not node.sandbox.allows(ip):
        node.stats.sandbox_refused += 1
        return error_response(403, f"{ip} is outside the dial allowlist")
    node.add_manual(ip, port)
    return web.json_response({"address": f"{ip}:{port}", "status": "connecting"}, status=202)


@routes.delete("/peers/{addr}")
async def delete_peer(request: web.Request) -> web.Response:
    node: Node = node_for(request)
    try:
        ip, port = parse_endpoint(request.match_info["addr"])
    except ValueError as e:
        raise BadRequest(f"bad address: {e}") from None
    if not node.remove_manual(ip, port):
        return error_response(404, f"not connected to {ip}:{port}")
    return web.json_response({"address": f"{ip}:{port}", "status": "disconnecting"})


@routes.get("/misbehaviour")
async def get_misbehaviour(request: web.Request) -> web.Response:
    """Every misbehaviour charged (last 10,000): time, planned address, peer id, reason, points,
    the score after it and the action taken."""
    return web.json_response(list(node_for(request).misbehaviour_log))


@routes.get("/bans")
async def get_bans(request: web.Request) -> web.Response:
    return web.json_response(node_for(request).list_bans())


@routes.post("/bans")
async def post_ban(request: web.Request) -> web.Response:
    """Ban an address or subnet by hand, like Core's `setban add` (body: address, reason?, duration?)."""
    node: Node = node_for(request)
    body = await json_body(request)
    address, duration = body.get("address"), body.get("duration")
    if not isinstance(address, str):
        raise BadRequest("expected {\"address\": \"ip or cidr\", \"duration\": seconds?, \"reason\": text?}")
    # JSON true is an int to Python, and json.loads accepts NaN and Infinity: refuse all three
    if duration is not None and (isinstance(duration, bool) or not isinstance(duration, (int, float))
                                 or not math.isfinite(duration) or duration <= 0):
        raise BadRequest("'duration' must be a positive, finite number of seconds")
    try:
        node.ban(address, str(body.get("reason") or "manual"), duration)
    except ValueError as e:
        raise BadRequest(f"bad address {address!r}: {e}") from None
    return web.json_response({"address": address, "status": "banned"})


@routes.delete("/bans")
async def delete_bans(request: web.Request) -> web.Response:
    node_for(request).clear_bans()
    return web.json_response({"status": "cleared"})


@routes.get("/metrics")
async def get_metrics(request: web.Request) -> web.Response:
    return web.Response(body=exposition(node_for(request)), headers={"Content-Type": "text/plain; version=0.0.4"})


def make_app() -> web.Application:
    app = web.Application(middlewares=[guard])
    app[NODES] = {}
    app.add_routes(routes)
    app.add_routes(chaos.routes)
    return app


class ControlServer:
    """One Application and runner; one listening socket per node."""

    def __init__(self) -> None:
        self.app = make_app()
        self.app[SERVER] = self
        self.runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        self.sites: dict[str, tuple[web.SockSite, tuple[str, int]]] = {}
        self._started = False
        self.on_replace: Callable[[Node], None] | None = None  # told of a node restarted in place

    async def start(self) -> None:
        if not self._started:
            await self.runner.setup()
            self._started = True

    async def add(self, node: Node) -> tuple[str, int]:
        """Serve `node` on its control_bind (default: its P2P bind) and control_port; returns the address."""
        await self.start()
        bind = node.config.control_bind or node.config.bind
        family = socket.AF_INET6 if ipaddress.ip_address(bind).version == 6 else socket.AF_INET
        sock = socket.create_server((bind, node.config.control_port or 0), family=family, reuse_port=False)
        addr = sock.getsockname()[:2]
        site = web.SockSite(self.runner, sock)
        await site.start()
        self.app[NODES][addr] = node
        self.sites[node.name] = (site, addr)
        node.control_address = addr  # type: ignore[attr-defined]
        return addr

    async def restart(self, node: Node, wipe_datadir: bool) -> Node:
        """A fresh node of the same config in place of ``node``, served on the same control site;
        ``on_replace`` (the host's) learns of it."""
        await node.stop()
        if wipe_datadir and node.config.datadir:
            shutil.rmtree(node.config.datadir, ignore_errors=True)
        fresh = type(node)(node.config)
        await fresh.start()
        for addr, served in list(self.app[NODES].items()):
            if served is node:
                self.app[NODES][addr] = fresh
                fresh.control_address = addr  # type: ignore[attr-defined]
        if self.on_replace is not None:
            self.on_replace(fresh)
        fresh.start_dialling()
        return fresh

    async def remove(self, node: Node) -> None:
        entry = self.sites.pop(node.name, None)
        if entry is not None:
            await entry[0].stop()
            self.app[NODES].pop(entry[1], None)
            # Stopping the site closes its listener, not its kept-alive connections: a scraper would
            # keep getting 404 from this process while the node, restarted elsewhere on the same
            # address, is never reached. Close them, so the client reconnects to whoever listens now.
            for handler in list(getattr(self.runner.server, "connections", ())):
                transport = handler.transport
                if transport is not None and tuple(transport.get_extra_info("sockname")[:2]) == tuple(entry[1]):
                    handler.force_close()

    async def stop(self) -> None:
        if self._started:
            await self.runner.cleanup()
            self._started = False
