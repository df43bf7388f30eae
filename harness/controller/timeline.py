"""Executes a plan's timeline: each action (harness/scenario/actions.py) is one small async handler here.

Adding an action = one ``@handler("name")`` function. A handler acts on one target node (or the
seeder) and returns a small JSON-able dict for the journal. Actions that take a duration
(stop_node, pause_node, seeder_mode) have an undo handler, run at the end of the duration.

Times: ``at`` is seconds after the timeline starts (all nodes ready). Waiting for the next event's
time is scheduling, not a sleep "to give it time".
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from harness.scenario.actions import ROGUE_SEEDER
from harness.backends.base import Backend, BackendError, Endpoint, RunStore
from harness.backends.node_config import seeder_mode_params
from harness.backends.client import ControlClient
from harness.controller import faults
from harness.errors import ExitCode, HarnessError
from harness.plan.model import Event, Plan


class TimelineError(HarnessError):
    exit_code = ExitCode.INVALID_INPUT


@dataclass
class EventRecord:
    """One executed action on one target, as journaled and shown in the report."""

    at: float  # planned, seconds after start
    action: str
    target: str | None
    params: dict[str, Any]
    started: float  # epoch seconds
    finished: float
    ok: bool
    result: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


@dataclass
class TimelineContext:
    plan: Plan
    backend: Backend
    client: ControlClient
    run: RunStore
    endpoints: dict[str, Endpoint]
    seeder: Endpoint | None
    records: list[EventRecord] = field(default_factory=list)
    # called with each record as its action finishes (the controller counts it for the annotations)
    on_record: Callable[[EventRecord], None] | None = None
    shared: dict[str, Any] = field(default_factory=dict)  # what one event's targets share (faults.py)

    def endpoint(self, name: str) -> Endpoint:
        try:
            return self.endpoints[name]
        except KeyError:
            raise TimelineError(f"no node named {name!r} in this run") from None

    def record_item(self, kind: str, item_id: str, origin: str, origin_time: float) -> None:
        """Journal an injected tx/block so that any later report (any shell) measures it."""
        self.run.append_journal({"type": "item", "kind": kind, "item_id": item_id, "origin": origin,
                                 "origin_time": origin_time})


Handler = Callable[[TimelineContext, "str | None", dict[str, Any]], Awaitable[dict[str, Any]]]
HANDLERS: dict[str, Handler] = {}
# action -> the handler that undoes it when its duration ends
UNDO: dict[str, str] = {"stop_node": "start_node", "pause_node": "resume_node", "seeder_mode": "seeder_mode_restore"}


def handler(name: str) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        HANDLERS[name] = fn
        return fn

    return register


# Backend calls block (subprocesses, sockets): run them in a thread so the timeline keeps its clock.
@handler("stop_node")
async def _stop_node(ctx: TimelineContext, target: str | None, params: dict[str, Any]) -> dict[str, Any]:
    await asyncio.to_thread(ctx.backend.stop_node, target)
    return {}


@handler("start_node")  # the undo of stop_node: same data directory unless churn wipes it
async def _start_node(ctx: TimelineContext, target: str | None, params: dict[str, Any]) -> dict[str, Any]:
    wipe = bool(params.get("wipe_datadir", False))
    await asyncio.to_thread(ctx.backend.restart_node, target, wipe)
    return {"wipe_datadir": wipe} if wipe else {}


@handler("restart_node")
async def _restart_node(ctx: TimelineContext, target: str | None, params: dict[str, Any]) -> dict[str, Any]:
    await asyncio.to_thread(ctx.backend.restart_node, target, bool(params.get("wipe_datadir", False)))
    return {"wipe_datadir": bool(params.get("wipe_datadir", False))}


@handler("pause_node")
async def _pause_node(ctx: TimelineContext, target: str | None, params: dict[str, Any]) -> dict[str, Any]:
    await asyncio.to_thread(ctx.backend.pause_node, target)
    return {}


@handler("resume_node")
async def _resume_node(ctx: TimelineContext, target: str | None, params: dict[str, Any]) -> dict[str, Any]:
    await asyncio.to_thread(ctx.backend.resume_node, target)
    return {}


async def _inject(ctx: TimelineContext, target: str | None, count: int, kind: str,
                  make: Callable[[Any], Awaitable[str]]) -> list[str]:
    """`count` synthetic items at `target`, each recorded with its send time for the figures."""
    ep = ctx.endpoint(target)
    ids = []
    for _ in range(count):
        sent = time.time()
        item = await make(ep)
        ctx.record_item(kind, item, target, sent)
        ids.append(item)
    return ids


@handler("inject_tx")
async def _inject_tx(ctx: TimelineContext, target: str | None, params: dict[str, Any]) -> dict[str, Any]:
    return {"txids": await _inject(ctx, target, int(params.get("count", 1)), "tx", ctx.client.inject_tx)}


@handler("inject_block")
async def _inject_block(ctx: TimelineContext, target: str | None, params: dict[str, Any]) -> dict[str, Any]:
    size, fill = params.get("size"), params.get("fill", "txs")

    async def mine(ep: Endpoint) -> str:
        return await ctx.client.mine_block(ep, size, fill)

    return {"hashes": await _inject(ctx, target, int(params.get("count", 1)), "block", mine)}


def _seeder(ctx: TimelineContext) -> Endpoint:
    if ctx.seeder is None:
        raise TimelineError("seeder_mode: this scenario has no DNS seeder")
    return ctx.seeder


@handler("seeder_mode")
async def _seeder_mode(ctx: TimelineContext, target: str | None, params: dict[str, Any]) -> dict[str, Any]:
    """A seeder mode on the running seeder, or `rogue`: a rogue seeder process replaces it on the
    same address and ports. Any other mode while the rogue runs brings the honest seeder back first."""
    ep = _seeder(ctx)
    before = await ctx.client.seeder_status(ep)
    previous = {"previous": before.get("mode"), "previous_params": before.get("params") or {}}
    attackers = [n.endpoint for n in ctx.plan.peers() if n.role == "attacker"]
    extra = dict(params.get("params") or {})
    if params["mode"] == ROGUE_SEEDER:
        addresses = seeder_mode_params("poison", extra, attackers)["addresses"]
        if _is_rogue(before):
            previous = {}  # already rogue: its undo must not bring the honest seeder back early
        await asyncio.to_thread(ctx.backend.replace_seeder, addresses)
        return {"mode": ROGUE_SEEDER, "addresses": addresses, **previous}
    if _is_rogue(before):
        await asyncio.to_thread(ctx.backend.replace_seeder, None)
    mode_params = seeder_mode_params(params["mode"], extra, attackers)
    await ctx.client.request(ep, "POST", "/mode", {"mode": params["mode"], "params": mode_params})
    return {"mode": params["mode"], **previous}


def _is_rogue(seeder_status: dict[str, Any]) -> bool:
    # The planned seeder always crawls; only a rogue one (backend.replace_seeder) runs without.
    return seeder_status.get("crawler") is False


@handler("seeder_mode_restore")  # the undo of seeder_mode: back to the seeder and mode it replaced
async def _seeder_mode_restore(ctx: TimelineContext, target: str | None, params: dict[str, Any]) -> dict[str, Any]:
    ep = _seeder(ctx)
    if "previous" not in params:
        return {"skipped": "the action found a rogue seeder running already: it is not ours to end"}
    mode = params.get("previous") or "honest"
    if _is_rogue(await ctx.client.seeder_status(ep)):
        await asyncio.to_thread(ctx.backend.replace_seeder, None)
        if (await ctx.client.seeder_status(ep)).get("mode") == mode:
            return {"mode": mode, "seeder": "honest again"}
    await ctx.client.request(ep, "POST", "/mode", {"mode": mode, "params": params.get("previous_params") or {}})
    return {"mode": mode}


@handler("disconnect_peer")
async def _disconnect_peer(ctx: TimelineContext, target: str | None, params: dict[str, Any]) -> dict[str, Any]:
    """Drop every connection of ``target`` to the given peer nodes (whatever the direction: an
    inbound peer is known by an ephemeral port, so the target's own peer list is read) or to an
    address (IP or IP:port)."""
    ep = ctx.endpoint(target)
    if params.get("address"):
        wanted_ips = {params["address"].rsplit(":", 1)[0] if params["address"].count(":") == 1 else params["address"]}
    else:
        peers = params.get("peer") or []
        wanted_ips = {ctx.plan.node(p).address for p in ([peers] if isinstance(peers, str) else peers)}
    status = await ctx.client.status(ep)
    dropped = [p["address"] for p in status.get("peers", []) if p["address"].rsplit(":", 1)[0] in wanted_ips]
    for address in dropped:
        await ctx.client.disconnect_peer(ep, address)
    return {"disconnected": dropped}


HANDLERS.update(faults.HANDLERS)  # partition, link_loss, clock_skew, bandwidth and their undos
UNDO.update(faults.UNDO)


def validate(timeline: Sequence[Event]) -> None:
    """Every action must have a handler (and an undo, for the end of a duration); checked before
    anything runs."""
    needed = {UNDO.get(e.action, f"(no undo for {e.action})") if e.phase == "end" else e.action for e in timeline}
    unknown = sorted(needed - set(HANDLERS))
    if unknown:
        raise TimelineError(f"no controller handler for action(s) {unknown}; known: {sorted(HANDLERS)}")


async def run_action(ctx: TimelineContext, at: float, action: str, target: str | None, params: dict[str, Any]) -> EventRecord:
    """Run one action on one target; a failure is recorded (and journaled), never raised."""
    if action not in HANDLERS:
        raise TimelineError(f"unknown action {action!r}; known: {sorted(HANDLERS)}")
    started = time.time()
    try:
        result, error = await HANDLERS[action](ctx, target, params), None
    except (HarnessError, BackendError, OSError, KeyError, ValueError) as e:
        result, error = {}, f"{type(e).__name__}: {e}"
    record = EventRecord(at, action, target, params, started, time.time(), error is None, result, error)
    ctx.records.append(record)
    ctx.run.append_journal({"type": "event", **asdict(record)})
    if ctx.on_record is not None:
        ctx.on_record(record)
    return record


async def execute(ctx: TimelineContext, timeline: Sequence[Event], start: float | None = None) -> list[EventRecord]:
    """Run the timeline against the monotonic clock from ``start`` (default now); returns records.

    Events at the same time run concurrently, and every target of one event concurrently. The
    planner turns an action with a duration into a begin/end pair; an ``end`` runs the action's
    undo (UNDO) with what the begin returned (e.g. the seeder mode it replaced), and is skipped if
    the begin failed. A pause with no duration is resumed when the timeline ends.
    """
    validate(timeline)
    start = time.monotonic() if start is None else start
    begun: dict[tuple[str, str | None], dict[str, Any]] = {}

    async def one(event: Event, target: str | None) -> None:
        key = (event.action, target)
        if event.phase == "end":
            if key in begun:
                await run_action(ctx, event.at, UNDO[event.action], target, {**event.params, **begun.pop(key)})
            return
        record = await run_action(ctx, event.at, event.action, target, dict(event.params))
        if record.ok and (event.phase == "begin" or event.action == "pause_node"):
            begun[key] = record.result

    for at in sorted({e.at for e in timeline}):
        delay = start + at - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)  # scheduling: the next event's time
        await asyncio.gather(*(one(e, t) for e in timeline if e.at == at for t in (e.nodes or (None,))))
    for (action, target), result in list(begun.items()):
        if action == "pause_node":
            await run_action(ctx, time.monotonic() - start, UNDO[action], target, result)
    return ctx.records
