"""Control API of the seeder (aiohttp): status, runtime mode switch, Prometheus metrics.

    GET  /status   {"mode", "params", "good": ["ip:port", ...], "known", "banned", ...}
    POST /mode     {"mode": "poison", "addresses": [...]}  or  {"mode": ..., "params": {...}}
    GET  /metrics  Prometheus text format

POST needs `Authorization: Bearer <token>` when a control token is configured.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import CollectorRegistry

from ..controlauth import bearer_ok
from .modes import Mode, ModeError


class Controllable(Protocol):
    registry: CollectorRegistry

    def status(self) -> dict[str, Any]: ...

    def set_mode(self, name: str, params: dict[str, Any]) -> Mode: ...


def _bad_request(message: str) -> web.Response:
    return web.json_response({"error": message}, status=400)


def make_app(seeder: Controllable, token: str | None) -> web.Application:
    async def status(_: web.Request) -> web.Response:
        return web.json_response(seeder.status())

    async def set_mode(request: web.Request) -> web.Response:
        if not bearer_ok(request.headers, token):
            return web.json_response({"error": "missing or wrong bearer token"}, status=401)
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return _bad_request("body must be a JSON object like {\"mode\": \"honest\"}")
        if not isinstance(body, dict) or "mode" not in body:
            return _bad_request("body must be a JSON object with a \"mode\" key")
        name = body["mode"]
        if "params" in body:
            params = body["params"]
            if set(body) - {"mode", "params"}:
                return _bad_request("give parameters either inside \"params\" or next to \"mode\", not both")
        else:
            params = {k: v for k, v in body.items() if k != "mode"}
        try:
            mode = seeder.set_mode(name, params)
        except ModeError as e:
            return _bad_request(str(e))
        return web.json_response({"mode": mode.name, "params": mode.params()})

    async def metrics(_: web.Request) -> web.Response:
        body = generate_latest(seeder.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/status", status)
    app.router.add_post("/mode", set_mode)
    app.router.add_get("/metrics", metrics)
    return app


class ControlServer:
    def __init__(self, seeder: Controllable, host: str, port: int, token: str | None) -> None:
        self.app = make_app(seeder, token)
        self.host = host
        self.port = port
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        if self.port == 0:
            server = site._server  # aiohttp exposes the bound port only through the asyncio server
            self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
