"""Timeline handlers of the network chaos actions (harness/scenario/actions.py; docs/chaos.md):
partition and heal, link loss, clock skew, bandwidth. Each acts on one target node through its
control API (`/chaos/...`), the node-level emulation every backend has; a partition may ask the
backend for its own means first (`native: true`, Backend.partition / heal).

timeline.py merges HANDLERS and UNDO into its tables; this module does not import it (the context
it needs is the small FaultContext below).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from harness.backends.base import Backend, BackendError, Endpoint
from harness.backends.client import ControlClient
from harness.plan.model import Plan


class FaultContext(Protocol):
    plan: Plan
    backend: Backend
    client: ControlClient
    shared: dict[str, Any]  # state one event's targets share (a native partition is made once)

    def endpoint(self, name: str) -> Endpoint: ...


Handler = Callable[[Any, "str | None", dict[str, Any]], Awaitable[dict[str, Any]]]
HANDLERS: dict[str, Handler] = {}
UNDO: dict[str, str] = {"partition": "heal", "link_loss": "link_loss_end", "clock_skew": "clock_skew_end",
                        "bandwidth": "bandwidth_end"}


def _handler(name: str) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        HANDLERS[name] = fn
        return fn

    return register


def cut_for(target: str, groups: list[list[str]], one_way: bool) -> list[str]:
    """The nodes `target` cannot reach under a partition into `groups` (node names): every node of
    the other groups; with one_way only the first group is cut off from the others."""
    mine = next((i for i, g in enumerate(groups) if target in g), None)
    if mine is None or (one_way and mine != 0):
        return []
    return sorted({n for i, g in enumerate(groups) if i != mine for n in g})


async def _native(ctx: FaultContext, params: dict[str, Any]) -> str | None:
    """Ask the backend once per event for its own partition; None if it made one, else why not."""
    key = "partition:" + json.dumps(params, sort_keys=True)
    if key not in ctx.shared:
        ctx.shared[key] = asyncio.ensure_future(
            asyncio.to_thread(ctx.backend.partition, params["groups"], bool(params.get("one_way"))))
    try:
        await ctx.shared[key]
    except (BackendError, NotImplementedError) as e:
        return str(e)
    return None


@_handler("partition")
async def _partition(ctx: FaultContext, target: str | None, params: dict[str, Any]) -> dict[str, Any]:
    if params.get("native"):
        why_not = await _native(ctx, params)
        if why_not is None:
            return {"native": True}
        fallback = {"native": False, "native_refused": why_not}
    else:
        fallback = {}
    cut = cut_for(target or "", params["groups"], bool(params.get("one_way")))
    if not cut:
        return {"unreachable": []}
    addresses = [ctx.plan.node(n).address for n in cut]
    result = await ctx.client.chaos(ctx.endpoint(target), "unreachable", {"addresses": addresses})
    return {**fallback, "unreachable": addresses, "peers_affected": result.get("peers_affected")}


@_handler("heal")  # the undo of partition: what this target held goes out
async def _heal(ctx: FaultContext, target: str | None, params: dict[str, Any]) -> dict[str, Any]:
    if params.get("native") is True:
        key = "heal:" + json.dumps(params.get("groups"), sort_keys=True)
        if key not in ctx.shared:
            ctx.shared[key] = asyncio.ensure_future(asyncio.to_thread(ctx.backend.heal))
        await ctx.shared[key]
        return {"native": True}
    if not params.get("unreachable"):
        return {}
    result = await ctx.client.chaos(ctx.endpoint(target), "reachable", {"addresses": params["unreachable"]})
    return {"reachable": params["unreachable"], "peers_released": result.get("peers_released")}


def _peer_addresses(ctx: FaultContext, target: str | None, peers: list[str] | None) -> list[str]:
    names = peers if peers else [n.name for n in ctx.plan.peers() if n.role in ("honest", "attacker")]
    return [ctx.plan.node(n).address for n in names if n != target]


@_handler("link_loss")
async def _link_loss(ctx: FaultContext, target: str | None, params: dict[str, Any]) -> dict[str, Any]:
    addresses = _peer_addresses(ctx, target, params.get("peers"))
    await ctx.client.chaos(ctx.endpoint(target), "loss", {"addresses": addresses, "loss": params["loss"]})
    return {"addresses": addresses, "loss": params["loss"]}


@_handler("link_loss_end")
async def _link_loss_end(ctx: FaultContext, target: str | None, params: dict[str, Any]) -> dict[str, Any]:
    await ctx.client.chaos(ctx.endpoint(target), "loss", {"addresses": params["addresses"], "loss": 0.0})
    return {"addresses": params["addresses"], "loss": 0.0}


@_handler("clock_skew")
async def _clock_skew(ctx: FaultContext, target: str | None, params: dict[str, Any]) -> dict[str, Any]:
    ep = ctx.endpoint(target)
    before = (await ctx.client.chaos(ep, "", method="GET")).get("clock_skew", 0.0)
    await ctx.client.chaos(ep, "clock", {"skew": params["seconds"]})
    return {"skew": params["seconds"], "previous": before}


@_handler("clock_skew_end")
async def _clock_skew_end(ctx: FaultContext, target: str | None, params: dict[str, Any]) -> dict[str, Any]:
    await ctx.client.chaos(ctx.endpoint(target), "clock", {"skew": params.get("previous", 0.0)})
    return {"skew": params.get("previous", 0.0)}


@_handler("bandwidth")
async def _bandwidth(ctx: FaultContext, target: str | None, params: dict[str, Any]) -> dict[str, Any]:
    ep = ctx.endpoint(target)
    before = await ctx.client.chaos(ep, "", method="GET")
    caps = {"up_kbit": params.get("up_kbit"), "down_kbit": params.get("down_kbit")}
    await ctx.client.chaos(ep, "bandwidth", caps)
    return {**caps, "previous": {"up_kbit": before.get("up_kbit"), "down_kbit": before.get("down_kbit")}}


@_handler("bandwidth_end")
async def _bandwidth_end(ctx: FaultContext, target: str | None, params: dict[str, Any]) -> dict[str, Any]:
    previous = params.get("previous") or {"up_kbit": None, "down_kbit": None}
    await ctx.client.chaos(ctx.endpoint(target), "bandwidth", previous)
    return previous
