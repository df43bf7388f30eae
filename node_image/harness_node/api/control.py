"""HTTP/JSON control API. One aiohttp Application serves many nodes (host mode): each node has its
own listening socket (its 127.a.b.c:control_port) and a request is routed to the node whose socket
it arrived on (the transport's sockname).

Mutating calls (POST, DELETE) need `Authorization: Bearer <token>` when the node has a token.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import math
import shutil
import socket
from io import BytesIO
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from ..chain.chain import BlockInvalid
from ..config import MAX_CLOCK_SKEW, parse_endpoint
from ..controlauth import bearer_ok
from ..node import Node
from ..wire.codec import DecodeError, hash_to_hex, hex_to_hash
from ..wire.messages import Block, Tx
from ..wire.synthetic import FILL_KINDS, MAX_SYNTHETIC_BLOCK
from . import items
from .metrics import exposition

NODES = web.AppKey("nodes", dict)  # (ip, port) -> Node
SERVER = web.AppKey("server", object)  # the ControlServer (for /shutdown and /restart)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class BadRequest(ValueError):
    pass


def node_for(request: web.Request) -> Node:
    transport = request.transport
    sock = transport.get_extra_info("sockname") if transport is not None else None
    nodes: dict[tuple[str, int], Node] = request.app[NODES]
    if sock is not None:
        node = nodes.get((sock[0], sock[1]))
        if node is not None:
            return node
        for (ip, port), node in nodes.items():  # a node listening on 0.0.0.0 / ::
            if port == sock[1] and ipaddress.ip_address(ip).is_unspecified:
                return node
    raise web.HTTPNotFound(text=json.dumps({"error": "no node serves this address"}), content_type="application/json")


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


@web.middleware
async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Authentication for mutating calls, and one place that turns bad input into 400."""
    node = node_for(request)
    if request.method in ("POST", "DELETE", "PUT") and not bearer_ok(request.headers, node.config.control_token):
        return _error(401, "missing or wrong bearer token")
    if getattr(node, "kept_stopped", False) and request.path != "/start":
        # stopped with {"keep_control": true}: its site waits for POST /start and does nothing else
        return _error(503 if request.path == "/status" else 409, f"node {node.name} is stopped; POST /start starts it")
    try:
        return await handler(request)
    except (BadRequest, DecodeError) as e:
        return _error(400, str(e))


async def _json_body(request: web.Request) -> dict[str, Any]:
    text = await request.text()
    if not text.strip():
        return {}
    try:
        body = json.loads(text)
    except ValueError as e:
        raise BadRequest(f"body is not JSON: {e}") from None
    if not isinstance(body, dict):
        raise BadRequest("body must be a JSON object")
    return body


def _raw_hex(body: dict[str, Any]) -> bytes:
    raw = body.get("raw")
    if not isinstance(raw, str):
        raise BadRequest("'raw' must be a hex string")
    try:
        return bytes.fromhex(raw)
    except ValueError:
        raise BadRequest("'raw' is not valid hex") from None


def _hash_param(text: str) -> bytes:
    try:
        h = hex_to_hash(text)
    except ValueError:
        h = b""
    if len(h) != 32:
        raise BadRequest(f"{text!r} is not a 64-digit hex hash")
    return h


routes = web.RouteTableDef()


@routes.get("/status")
async def get_status(request: web.Request) -> web.Response:
    return web.json_response(node_for(request).status())


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
    rec = items.tx_record(node_for(request), _hash_param(request.match_info["txid"]))
    return _error(404, "transaction not seen") if rec is None else web.json_response(rec)


@routes.get("/block/{hash}")
async def get_block(request: web.Request) -> web.Response:
    rec = items.block_record(node_for(request), _hash_param(request.match_info["hash"]))
    return _error(404, "block not seen") if rec is None else web.json_response(rec)


@routes.get("/items")
async def get_items(request: web.Request) -> web.Response:
    """?tx=ID,ID&block=ID: the records of many items at once ({"tx": {id: record}, "block": ...};
    an unseen item is absent)."""
    node = node_for(request)
    wanted = {kind: [i for i in request.query.get(kind, "").split(",") if i] for kind in ("tx", "block")}
    if sum(map(len, wanted.values())) > items.MAX_ITEMS_PER_REQUEST:
        raise BadRequest(f"at most {items.MAX_ITEMS_PER_REQUEST} item ids per request")
    record = {"tx": items.tx_record, "block": items.block_record}
    out: dict[str, dict[str, Any]] = {}
    for kind, ids in wanted.items():
        found = ((i, record[kind](node, _hash_param(i))) for i in ids)
        out[kind] = {i: rec for i, rec in found if rec is not None}
    return web.json_response(out)


@routes.get("/capture")
async def get_capture(request: web.Request) -> web.Response:
    return web.json_response(node_for(request).capture_info())


@routes.post("/capture")
async def post_capture(request: web.Request) -> web.Response:
    """{"on": true|false}: start or stop message capture (docs/capture.md); answers its state."""
    on = (await _json_body(request)).get("on")
    if not isinstance(on, bool):
        raise BadRequest("'on' must be true or false")
    try:
        return web.json_response(node_for(request).set_capture(on))
    except ValueError as e:
        return _error(409, str(e))


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
    keep = (await _json_body(request)).get("keep_control", False)
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
    wipe = (await _json_body(request)).get("wipe_datadir", False)
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
    wipe = (await _json_body(request)).get("wipe_datadir", False)
    if not isinstance(wipe, bool):
        raise BadRequest("'wipe_datadir' must be true or false")
    if not getattr(node, "kept_stopped", False):
        return _error(409, f"node {node.name} is not stopped (POST /restart restarts a running node)")
    server: ControlServer = request.app[SERVER]
    await server.restart(node, wipe)
    return web.json_response({"status": "running", "wipe_datadir": wipe})


@routes.post("/tx")
async def post_tx(request: web.Request) -> web.Response:
    node: Node = node_for(request)
    body = await _json_body(request)
    if body.get("synthetic") is True:
        tx = node.inject_tx()
        return web.json_response({"txid": hash_to_hex(tx.txid), "accepted": True})
    if "raw" not in body:
        raise BadRequest("expected {\"synthetic\": true} or {\"raw\": \"<hex>\"}")
    tx = Tx.from_bytes(_raw_hex(body))
    return web.json_response({"txid": hash_to_hex(tx.txid), "accepted": node.submit_tx(tx)})


@routes.post("/block")
async def post_block(request: web.Request) -> web.Response:
    node: Node = node_for(request)
    body = await _json_body(request)
    unknown = set(body) - {"raw", "synthetic", "include_mempool", "size", "fill"}
    if unknown:
        raise BadRequest(f"unknown field(s) {sorted(unknown)}")
    if "raw" in body:
        f = BytesIO(_raw_hex(body))
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
    body = await _json_body(request)
    address = body.get("address")
    if not isinstance(address, str):
        raise BadRequest("expected {\"address\": \"ip:port\"}")
    try:
        ip, port = parse_endpoint(address)
    except ValueError as e:
        raise BadRequest(f"bad address {address!r}: {e}") from None
    if not node.sandbox.allows(ip):
        node.stats.sandbox_refused += 1
        return _error(403, f"{ip} is outside the dial allowlist")
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
        return _error(404, f"not connected to {ip}:{port}")
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
    body = await _json_body(request)
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


def _ips(body: dict[str, Any], field: str = "addresses") -> list[str]:
    ips = body.get(field)
    if not isinstance(ips, list) or not all(isinstance(ip, str) for ip in ips):
        raise BadRequest(f"'{field}' must be a list of planned IP addresses")
    for ip in ips:
        try:
            ipaddress.ip_address(ip)
        except ValueError:
            raise BadRequest(f"'{field}': {ip!r} is not an IP address (give the planned address, no port)") from None
    return ips


def _number(body: dict[str, Any], field: str, nullable: bool = False) -> float | None:
    value = body.get(field)
    if value is None and nullable:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadRequest(f"'{field}' must be a number{' or null' if nullable else ''}")
    return float(value)


def _checked(setter: Callable[..., None], *args: Any) -> None:
    """Apply a chaos setting; the node's own bounds (ValueError) become a 400 naming them."""
    try:
        setter(*args)
    except ValueError as e:
        raise BadRequest(str(e)) from None


# Chaos faults (docs/chaos.md): the node-level network emulation every backend has.
@routes.get("/chaos")
async def get_chaos(request: web.Request) -> web.Response:
    return web.json_response(node_for(request).chaos_status())


@routes.post("/chaos/unreachable")
async def post_unreachable(request: web.Request) -> web.Response:
    """Partition: hold every message to these planned addresses and do not dial them, until
    DELETE /chaos/unreachable (all) or POST /chaos/reachable (some)."""
    node: Node = node_for(request)
    ips = _ips(await _json_body(request))
    return web.json_response({"unreachable": ips, "peers_affected": node.set_unreachable(ips, True)})


@routes.post("/chaos/reachable")
async def post_reachable(request: web.Request) -> web.Response:
    node: Node = node_for(request)
    ips = _ips(await _json_body(request))
    return web.json_response({"reachable": ips, "peers_released": node.set_unreachable(ips, False)})


@routes.delete("/chaos/unreachable")
async def delete_unreachable(request: web.Request) -> web.Response:
    return web.json_response({"peers_released": node_for(request).heal()})


@routes.post("/chaos/loss")
async def post_loss(request: web.Request) -> web.Response:
    """Drop this share of messages sent to these planned addresses (0 ends it)."""
    node: Node = node_for(request)
    body = await _json_body(request)
    ips, loss = _ips(body), _number(body, "loss")
    _checked(node.set_loss, ips, loss)
    return web.json_response({"addresses": ips, "loss": loss})


@routes.post("/chaos/bandwidth")
async def post_bandwidth(request: web.Request) -> web.Response:
    """Upload/download caps in kbit/s over all of the node's links; null lifts a cap."""
    node: Node = node_for(request)
    body = await _json_body(request)
    unknown = set(body) - {"up_kbit", "down_kbit"}
    if unknown:
        raise BadRequest(f"unknown field(s) {sorted(unknown)}; known: ['down_kbit', 'up_kbit']")
    up, down = _number(body, "up_kbit", True), _number(body, "down_kbit", True)
    _checked(node.set_bandwidth, up, down)
    return web.json_response({"up_kbit": up, "down_kbit": down})


@routes.post("/chaos/clock")
async def post_clock(request: web.Request) -> web.Response:
    """Skew the node's wall clock by `skew` seconds (0 ends it)."""
    node: Node = node_for(request)
    skew = _number(await _json_body(request), "skew")
    if abs(skew) > MAX_CLOCK_SKEW:  # type: ignore[arg-type]
        raise BadRequest(f"'skew' must be within +-{MAX_CLOCK_SKEW:g} seconds")
    node.set_clock_skew(skew)  # type: ignore[arg-type]
    return web.json_response({"skew": skew})


@routes.get("/metrics")
async def get_metrics(request: web.Request) -> web.Response:
    return web.Response(body=exposition(node_for(request)), headers={"Content-Type": "text/plain; version=0.0.4"})


def make_app() -> web.Application:
    app = web.Application(middlewares=[guard])
    app[NODES] = {}
    app.add_routes(routes)
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
