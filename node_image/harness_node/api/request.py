"""Reading a control API request: which node it is for (the socket it arrived on), whether it may
mutate (the bearer token), and the typed fields of its JSON body. A field that does not parse is a
`BadRequest`, which `guard` turns into a 400 naming the field."""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from ..controlauth import bearer_ok
from ..node import Node
from ..wire.codec import DecodeError, hex_to_hash

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


def error_response(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


@web.middleware
async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Authentication for mutating calls, and one place that turns bad input into 400."""
    node = node_for(request)
    if request.method in ("POST", "DELETE", "PUT") and not bearer_ok(request.headers, node.config.control_token):
        return error_response(401, "missing or wrong bearer token")
    if getattr(node, "kept_stopped", False) and request.path != "/start":
        # stopped with {"keep_control": true}: its site waits for POST /start and does nothing else
        return error_response(503 if request.path == "/status" else 409, f"node {node.name} is stopped; POST /start starts it")
    try:
        return await handler(request)
    except (BadRequest, DecodeError) as e:
        return error_response(400, str(e))


async def json_body(request: web.Request) -> dict[str, Any]:
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


def raw_hex(body: dict[str, Any]) -> bytes:
    raw = body.get("raw")
    if not isinstance(raw, str):
        raise BadRequest("'raw' must be a hex string")
    try:
        return bytes.fromhex(raw)
    except ValueError:
        raise BadRequest("'raw' is not valid hex") from None


def hash_param(text: str) -> bytes:
    try:
        h = hex_to_hash(text)
    except ValueError:
        h = b""
    if len(h) != 32:
        raise BadRequest(f"{text!r} is not a 64-digit hex hash")
    return h


def ips_field(body: dict[str, Any], field: str = "addresses") -> list[str]:
    ips = body.get(field)
    if not isinstance(ips, list) or not all(isinstance(ip, str) for ip in ips):
        raise BadRequest(f"'{field}' must be a list of planned IP addresses")
    for ip in ips:
        try:
            ipaddress.ip_address(ip)
        except ValueError:
            raise BadRequest(f"'{field}': {ip!r} is not an IP address (give the planned address, no port)") from None
    return ips


def number_field(body: dict[str, Any], field: str, nullable: bool = False) -> float | None:
    value = body.get(field)
    if value is None and nullable:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadRequest(f"'{field}' must be a number{' or null' if nullable else ''}")
    return float(value)
