"""The chaos routes (docs/chaos.md): the node-level network emulation every backend has."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web

from ..config import MAX_CLOCK_SKEW
from ..node import Node
from .request import BadRequest, ips_field, json_body, node_for, number_field

routes = web.RouteTableDef()


def _checked(setter: Callable[..., None], *args: Any) -> None:
    """Apply a chaos setting; the node's own bounds (ValueError) become a 400 naming them."""
    try:
        setter(*args)
    except ValueError as e:
        raise BadRequest(str(e)) from None


@routes.get("/chaos")
async def get_chaos(request: web.Request) -> web.Response:
    return web.json_response(node_for(request).chaos_status())


@routes.post("/chaos/unreachable")
async def post_unreachable(request: web.Request) -> web.Response:
    """Partition: hold every message to these planned addresses and do not dial them, until
    DELETE /chaos/unreachable (all) or POST /chaos/reachable (some)."""
    node: Node = node_for(request)
    ips = ips_field(await json_body(request))
    return web.json_response({"unreachable": ips, "peers_affected": node.set_unreachable(ips, True)})


@routes.post("/chaos/reachable")
async def post_reachable(request: web.Request) -> web.Response:
    node: Node = node_for(request)
    ips = ips_field(await json_body(request))
    return web.json_response({"reachable": ips, "peers_released": node.set_unreachable(ips, False)})


@routes.delete("/chaos/unreachable")
async def delete_unreachable(request: web.Request) -> web.Response:
    return web.json_response({"peers_released": node_for(request).heal()})


@routes.post("/chaos/loss")
async def post_loss(request: web.Request) -> web.Response:
    """Drop this share of messages sent to these planned addresses (0 ends it)."""
    node: Node = node_for(request)
    body = await json_body(request)
    ips, loss = ips_field(body), number_field(body, "loss")
    _checked(node.set_loss, ips, loss)
    return web.json_response({"addresses": ips, "loss": loss})


@routes.post("/chaos/bandwidth")
async def post_bandwidth(request: web.Request) -> web.Response:
    """Upload/download caps in kbit/s over all of the node's links; null lifts a cap."""
    node: Node = node_for(request)
    body = await json_body(request)
    unknown = set(body) - {"up_kbit", "down_kbit"}
    if unknown:
        raise BadRequest(f"unknown field(s) {sorted(unknown)}; known: ['down_kbit', 'up_kbit']")
    up, down = number_field(body, "up_kbit", True), number_field(body, "down_kbit", True)
    _checked(node.set_bandwidth, up, down)
    return web.json_response({"up_kbit": up, "down_kbit": down})


@routes.post("/chaos/clock")
async def post_clock(request: web.Request) -> web.Response:
    """Skew the node's wall clock by `skew` seconds (0 ends it)."""
    node: Node = node_for(request)
    skew = number_field(await json_body(request), "skew")
    if abs(skew) > MAX_CLOCK_SKEW:  # type: ignore[arg-type]
        raise BadRequest(f"'skew' must be within +-{MAX_CLOCK_SKEW:g} seconds")
    node.set_clock_skew(skew)  # type: ignore[arg-type]
    return web.json_response({"skew": skew})
