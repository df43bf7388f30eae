"""The attacker process's control API (aiohttp), one site per identity on its own address, like
the node host's: a request is routed to the identity whose socket it arrived on.

    GET  /status   the identity: kind, targets, open connections, the kind's detail
    GET  /identities  /status of every identity this process serves ({name: status}): the harness
                   polls one site per process, not one per identity (hundreds for an eclipse)
    GET  /data     the kind's bulk data (the spy's views), too large to ride on every /status poll;
                   `?since=T` (unix s): only what was recorded at or after T (the spy: announcements)
    GET  /metrics  its `harness_attacker_*` series (Prometheus text)
    POST /stop     stop this identity's attack (its connections close); needs the bearer token

The token check is the node's and the seeder's (controlauth); a site off loopback without a token
is refused at config time (AttackConfig.validate).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Awaitable, Callable
from typing import Protocol

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ..controlauth import bearer_ok
from .base import Attacker

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Stoppable(Protocol):
    """What the control API needs from the runtime (runtime.AttackRuntime)."""

    token: str | None
    attackers: dict[str, Attacker]

    async def stop_attacker(self, name: str) -> None: ...


IDENTITIES = web.AppKey("identities", dict)  # (ip, port) -> Attacker
RUNTIME = web.AppKey("runtime", object)  # the Stoppable


def _identity(request: web.Request) -> Attacker:
    transport = request.transport
    sock = transport.get_extra_info("sockname") if transport is not None else None
    identities = request.app[IDENTITIES]
    # A site bound to the wildcard (Kubernetes: one identity per pod, its IP unknown in advance)
    # sees the pod's own address as sockname: it is found by its port.
    found = (identities.get((sock[0], sock[1])) or identities.get(("0.0.0.0", sock[1]))
             or identities.get(("::", sock[1]))) if sock else None
    if found is None:
        raise web.HTTPNotFound(text='{"error": "no attacker serves this address"}', content_type="application/json")
    return found


@web.middleware
async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    runtime: Stoppable = request.app[RUNTIME]  # type: ignore[assignment]
    if request.method in ("POST", "PUT", "DELETE") and not bearer_ok(request.headers, runtime.token):
        return web.json_response({"error": "missing or wrong bearer token"}, status=401)
    return await handler(request)


async def get_status(request: web.Request) -> web.Response:
    return web.json_response(_identity(request).status())


async def get_identities(request: web.Request) -> web.Response:
    _identity(request)  # a site of this process: 404 otherwise, like every other path
    runtime: Stoppable = request.app[RUNTIME]  # type: ignore[assignment]
    return web.json_response({name: a.status() for name, a in runtime.attackers.items()})


async def get_data(request: web.Request) -> web.Response:
    since = request.query.get("since")
    try:
        after = float(since) if since is not None else None
    except ValueError:
        return web.json_response({"error": f"since: not a number of seconds: {since!r}"}, status=400)
    return web.json_response(_identity(request).data(after))


async def get_metrics(request: web.Request) -> web.Response:
    body = generate_latest(_identity(request).metrics.registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def post_stop(request: web.Request) -> web.Response:
    attacker = _identity(request)
    runtime: Stoppable = request.app[RUNTIME]  # type: ignore[assignment]
    await runtime.stop_attacker(attacker.name)
    return web.json_response({"stopped": attacker.name})


class ControlServer:
    """One Application and runner; one listening socket per identity."""

    def __init__(self, runtime: Stoppable) -> None:
        self.app = web.Application(middlewares=[guard])
        self.app[IDENTITIES] = {}
        self.app[RUNTIME] = runtime
        self.app.router.add_get("/status", get_status)
        self.app.router.add_get("/identities", get_identities)
        self.app.router.add_get("/data", get_data)
        self.app.router.add_get("/metrics", get_metrics)
        self.app.router.add_post("/stop", post_stop)
        self.runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        self._started = False

    async def add(self, attacker: Attacker, host: str, port: int) -> tuple[str, int]:
        if not self._started:
            await self.runner.setup()
            self._started = True
        family = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
        sock = socket.create_server((host, port), family=family, reuse_port=False)
        addr = sock.getsockname()[:2]
        await web.SockSite(self.runner, sock).start()
        self.app[IDENTITIES][addr] = attacker
        return addr

    async def stop(self) -> None:
        if self._started:
            await self.runner.cleanup()
            self._started = False
