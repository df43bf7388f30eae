"""HTTP/JSON client of the node and seeder control APIs: the one place that knows their paths.

Assumed node API (node_image/harness_node/api/control.py), on http://<bind>:<control_port>, with
``Authorization: Bearer <control_token>`` when the node has a token:

    GET    /status          {id, address, height, tip, peers: [{address, direction, user_agent,
                              services, connected_time (or conntime), score}]}
    GET    /tx/{txid}       {first_seen_ns, from_peer, origin_ns, propagation_delay_s}; 404 if unseen
    GET    /block/{hash}    same as /tx for blocks; 404 if never seen       (assumed, not in brief)
    GET    /items?tx=ID,..&block=ID,..  {"tx": {id: as /tx}, "block": {...}}, unseen ids absent
    POST   /tx              {"synthetic": true} -> {txid}
    POST   /block           {} -> {hash}
    POST   /peers           {"address": "ip:port"}
    DELETE /peers/{ip:port}
    GET    /bans            [{address, reason, until, kind: ban|discourage}]
    POST   /pause, /resume  node-level pause (stop reading/sending, keep sockets) (assumed)
    POST   /shutdown        stop this node inside its host process, free its ports (assumed)
Seeder: GET /status, POST /mode {"mode": ...}.

Connection failures (request never sent) are retried for every method; timeouts and 5xx only for
GET/DELETE, because retrying a POST /tx whose answer was lost would inject a second tx.
"""

from __future__ import annotations

import asyncio
import ipaddress
import random
from collections.abc import Awaitable, Callable, Iterable, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlencode

from harness_node.names import MAX_ITEMS_PER_REQUEST

from harness.backends.endpoint import Endpoint
from harness.errors import BackendError

if TYPE_CHECKING:
    import aiohttp

REQUEST_TIMEOUT_SECONDS = 5.0
# An injection (a tx, a block) is a POST, never retried (it would inject twice), so it gets time: a
# bitcoind member's first payment mines 101 blocks first (docs/bitcoind.md), and a light node's host
# process at 10,000 nodes lags seconds at its p99 (a block's 5 s timed out there, docs/benchmarks.md).
INJECT_TIMEOUT_SECONDS = 60.0
RETRIES = 3
RETRY_BACKOFF_SECONDS = 0.2  # doubled on each retry
HOST_PICKS = 4  # endpoints asked for their whole host per round of `statuses`
HOST_STATUS_TIMEOUT_SECONDS = 30.0  # a host of 800 nodes answers ~2.5 MB, from a loop that may lag seconds
MAX_CONCURRENT_REQUESTS = 64  # bounded so 1,000 nodes do not open 1,000 sockets at once
ADDRMAN_NETWORKS_PER_QUERY = 200  # ~4 kB of URL; aiohttp refuses request lines over 8 kB
IDEMPOTENT = frozenset({"GET", "DELETE", "HEAD"})

T = TypeVar("T")


class ControlAPIError(BackendError):
    """A control API call failed; names the node, the call and why."""

    def __init__(self, node: str, call: str, reason: str, status: int | None = None) -> None:
        super().__init__(f"{node}: {call} failed: {reason}")
        self.node, self.call, self.reason, self.status = node, call, reason, status


class ControlClient:
    """One aiohttp session shared by every call of a controller (use as ``async with``)."""

    def __init__(
        self,
        token: str | None = None,
        timeout: float = REQUEST_TIMEOUT_SECONDS,
        retries: int = RETRIES,
        concurrency: int = MAX_CONCURRENT_REQUESTS,
    ) -> None:
        self.token, self.timeout, self.retries, self.concurrency = token, timeout, retries, concurrency
        self._session: aiohttp.ClientSession | None = None
        self._slots = asyncio.Semaphore(concurrency)
        # endpoint name -> the endpoint whose host process last answered for it (`per_host`): the
        # next call asks each known host at once, in one round
        self._host_of: dict[str, str] = {}

    def place(self, groups: Iterable[Sequence[str]]) -> None:
        """Tell the client which endpoints share a host process (`Backend.host_groups`), so that its
        first `per_host` round asks each process once: finding 13 workers by random picks took
        rounds as slow as their slowest host, 43 s for the first sample of 10,000 forming nodes
        (docs/benchmarks.md, issue 17, twentieth round). A wrong or stale group costs nothing but
        that: a host answers only for the nodes it serves, and the others are asked as before."""
        for group in groups:
            for name in group:
                self._host_of[name] = group[0]

    async def __aenter__(self) -> "ControlClient":
        import aiohttp  # here, not at the top: aiohttp is ~0.2 s of import that `harness validate` never needs

        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        self._session = aiohttp.ClientSession(
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=self.timeout),
            # No keep-alive: a kept connection to a node that was restarted still reaches the worker
            # that hosted it before, which answers 404 "no node serves this address" for ever after.
            connector=aiohttp.TCPConnector(limit=self.concurrency, force_close=True),
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def request(
        self,
        ep: Endpoint,
        method: str,
        path: str,
        body: Any = None,
        *,
        retries: int | None = None,
        allow_404: bool = False,
        timeout: float | None = None,
    ) -> Any:
        if self._session is None:
            raise RuntimeError("ControlClient used outside `async with`")
        import aiohttp  # loaded by __aenter__; the name is needed for the exceptions below
        call = f"{method} {path}"
        attempts = 1 + (self.retries if retries is None else retries)
        backoff = RETRY_BACKOFF_SECONDS
        last = "no attempt"
        per_call = {"timeout": aiohttp.ClientTimeout(total=timeout)} if timeout is not None else {}
        for attempt in range(attempts):
            if attempt:
                await asyncio.sleep(backoff)  # retry back-off, not a wait for a condition
                backoff *= 2
            try:
                async with self._slots, self._session.request(method, ep.control_url + path, json=body, **per_call) as resp:
                    if resp.status == 404 and allow_404:
                        return None
                    if resp.status >= 500 and method in IDEMPOTENT:
                        last = f"HTTP {resp.status}"
                        continue
                    if resp.status >= 400:
                        raise ControlAPIError(ep.name, call, f"HTTP {resp.status}: {(await resp.text())[:200]}", resp.status)
                    return await resp.json(content_type=None) if resp.content_length != 0 else None
            except aiohttp.ClientConnectorError as e:
                last = f"cannot connect to {ep.control_url} ({e.os_error or e})"
            except (aiohttp.ClientError, asyncio.TimeoutError) as e:
                last = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
                if method not in IDEMPOTENT:
                    break
        raise ControlAPIError(ep.name, call, last)

    # --- node API -------------------------------------------------------------------------------
    async def status(self, ep: Endpoint, retries: int | None = None, peer_counts: bool = False) -> dict[str, Any]:
        """`peer_counts`: a light node answers `peer_counts` {inbound, outbound} instead of the peer
        list; other members (a bitcoind's supervisor) ignore it and list their peers."""
        return await self.request(ep, "GET", "/status?peers=counts" if peer_counts else "/status", retries=retries)

    async def statuses(self, eps: Sequence[Endpoint], rng: random.Random | None = None) -> dict[str, Any]:
        """`status(peer_counts=True)` of every endpoint, asking each host process once where it can
        (`per_host`)."""
        return await self.per_host(eps, "/host/status", partial(self.status, peer_counts=True), rng)

    async def per_host(self, eps: Sequence[Endpoint], host_path: str, one: Callable[[Endpoint], Awaitable[T]],
                       rng: random.Random | None = None, convert: Callable[[Any], T] | None = None,
                       host_timeout: float = HOST_STATUS_TIMEOUT_SECONDS) -> dict[str, T | ControlAPIError]:
        """`one` of every endpoint, asking each host process once where it can: a light node's
        `GET /host/...` answers {"nodes": {name: answer}} for every node its process serves, each
        answer what `one` returns (or, with `convert`, what `convert` makes of it). The first round
        asks one endpoint of each host an earlier call learnt and HOST_PICKS random others, later
        rounds HOST_PICKS random endpoints not yet answered for nor asked; once no answer of a round
        names more than the endpoint asked (bitcoind supervisors, a hung or older worker, a
        container of one node), or a round learns nothing new, or every endpoint left was asked,
        the rest are asked one by one as `gather` does. Failures come back in place as
        ControlAPIError. `host_timeout`: how long a host's answer may take."""
        rng = rng or random.Random()
        pending = {ep.name: ep for ep in eps}
        out: dict[str, Any] = {}
        asked: set[str] = set()  # its host route failed or answered: not asked that way again
        picks = self._known_hosts(pending, rng)
        while picks:
            asked.update(ep.name for ep in picks)
            answers = await asyncio.gather(*(self._host_answers(ep, host_path, host_timeout) for ep in picks))
            learnt, wider = 0, False
            for ep, got in zip(picks, answers):  # None: no such route, or the call failed (asked alone below)
                wider = wider or any(name != ep.name for name in got or {})
                for name, answer in (got or {}).items():
                    self._host_of[name] = ep.name
                    if name in pending:
                        out[name] = convert(answer) if convert is not None else answer
                        del pending[name]
                        learnt += 1
            # no host answered for more than itself, or nothing new: the rest one by one. (Counting
            # names against picks instead stopped early when the picks all fell on one small host.)
            if not wider or not learnt:
                break
            left = [ep for name, ep in pending.items() if name not in asked]
            picks = rng.sample(left, min(HOST_PICKS, len(left)))
        out.update(await self.gather(list(pending.values()), one))
        return out

    def _known_hosts(self, pending: dict[str, Endpoint], rng: random.Random) -> list[Endpoint]:
        """The first round's picks: one endpoint of each host process an earlier call learnt, and
        HOST_PICKS random ones of those not placed yet. Random picks alone need several rounds to
        find 13 workers, each round as slow as its slowest host (one `harness status` took 40 s
        while 10,000 nodes formed their graph), and the run's collector and `wait_ready` ask again
        every few seconds."""
        hosts: dict[str, list[Endpoint]] = {}
        unplaced: list[Endpoint] = []
        for name, ep in pending.items():
            host = self._host_of.get(name)
            if host is None:
                unplaced.append(ep)
            else:
                hosts.setdefault(host, []).append(ep)
        return [rng.choice(eps) for eps in hosts.values()] + rng.sample(unplaced, min(HOST_PICKS, len(unplaced)))

    async def _host_answers(self, ep: Endpoint, path: str, timeout: float) -> dict[str, Any] | None:
        try:
            got = await self.request(ep, "GET", path, allow_404=True, timeout=timeout)
        except ControlAPIError:
            return None
        return got.get("nodes") if isinstance(got, dict) and isinstance(got.get("nodes"), dict) else None

    async def item(self, ep: Endpoint, kind: str, item_id: str) -> dict[str, Any] | None:
        """{first_seen (epoch s), from_peer, delay (s)} of a tx or block at this node, None if unseen."""
        rec = await self.request(ep, "GET", ("/tx/" if kind == "tx" else "/block/") + item_id, allow_404=True)
        return _item_record(rec) if rec is not None else None

    async def items(self, ep: Endpoint, wanted: Sequence[tuple[str, str]]) -> dict[tuple[str, str], dict[str, Any] | None]:
        """`item` for many (kind, id) at this node: GET /items, MAX_ITEMS_PER_REQUEST ids a request
        (one request per item and node cost more than the run at 100 nodes and 300 txs); a member
        without /items (a bitcoind's supervisor) is asked item by item."""
        out: dict[tuple[str, str], dict[str, Any] | None] = {}
        for chunk in _chunks(wanted):
            got = await self.request(ep, "GET", "/items?" + _items_query(chunk), allow_404=True)
            if got is None:
                records = await asyncio.gather(*(self.item(ep, kind, i) for kind, i in chunk))
                out.update(zip(chunk, records))
                continue
            out.update(_item_records(got, chunk))
        return out

    async def items_of(self, eps: Sequence[Endpoint], wanted: Sequence[tuple[str, str]]
                       ) -> dict[str, dict[tuple[str, str], dict[str, Any] | None] | ControlAPIError]:
        """`items` of every endpoint, each host process asked once per chunk of ids where it can
        (`per_host`, GET /host/items); an endpoint that failed any chunk is its ControlAPIError."""
        out: dict[str, dict[tuple[str, str], dict[str, Any] | None] | ControlAPIError] = {ep.name: {} for ep in eps}
        for chunk in _chunks(wanted):
            got = await self.per_host(eps, "/host/items?" + _items_query(chunk), partial(self.items, wanted=chunk),
                                      convert=partial(_item_records, chunk=chunk))
            for name, answer in got.items():
                if not isinstance(out[name], ControlAPIError):
                    out[name] = answer if isinstance(answer, ControlAPIError) else {**out[name], **answer}
        return out

    async def inject_tx(self, ep: Endpoint) -> str:
        return (await self.request(ep, "POST", "/tx", {"synthetic": True}, timeout=INJECT_TIMEOUT_SECONDS))["txid"]

    async def fund(self, ep: Endpoint) -> dict[str, Any]:
        """A bitcoind member's wallet made able to pay (harness.backends.funding): {tip, height, mined}."""
        answer: dict[str, Any] = await self.request(ep, "POST", "/fund", {}, timeout=INJECT_TIMEOUT_SECONDS)
        return answer

    async def mine_block(self, ep: Endpoint, size: int | None = None, fill: str = "txs") -> str:
        """A block on the node's tip; with `size`, filled to about that many bytes (docs/chaos.md)."""
        body: dict[str, Any] = {} if size is None else {"size": size, "fill": fill}
        return (await self.request(ep, "POST", "/block", body, timeout=INJECT_TIMEOUT_SECONDS))["hash"]

    async def chaos(self, ep: Endpoint, what: str, body: dict[str, Any] | None = None,
                    method: str = "POST") -> dict[str, Any]:
        """A node-level network fault: /chaos/<what> (unreachable, reachable, loss, bandwidth, clock)."""
        return await self.request(ep, method, f"/chaos/{what}" if what else "/chaos", body)

    async def add_peer(self, ep: Endpoint, address: str) -> None:
        await self.request(ep, "POST", "/peers", {"address": address})

    async def disconnect_peer(self, ep: Endpoint, address: str) -> None:
        await self.request(ep, "DELETE", f"/peers/{address}")

    async def bans(self, ep: Endpoint) -> list[dict[str, Any]]:
        return _ban_list(await self.request(ep, "GET", "/bans"))

    async def bans_of(self, eps: Sequence[Endpoint]) -> dict[str, list[dict[str, Any]] | ControlAPIError]:
        """`bans` of every endpoint, each host process asked once where it can (GET /host/bans)."""
        return await self.per_host(eps, "/host/bans", self.bans, convert=_ban_list)

    async def addrman_count(self, ep: Endpoint, hosts: Iterable[str]) -> dict[str, tuple[int, int]] | None:
        """table -> (slots holding one of ``hosts``, all occupied slots); None if the node cannot say.
        The node's GET /addrman?networks= with the hosts as collapsed networks, in chunks that keep
        the URL short (collapsed networks are disjoint, so the chunks' counts add up)."""
        nets = [str(n) for n in ipaddress.collapse_addresses(ipaddress.ip_network(h) for h in sorted(set(hosts)))]
        out: dict[str, tuple[int, int]] = {}
        for i in range(0, max(1, len(nets)), ADDRMAN_NETWORKS_PER_QUERY):
            chunk = ",".join(nets[i:i + ADDRMAN_NETWORKS_PER_QUERY])
            data = await self.request(ep, "GET", f"/addrman?networks={chunk}", allow_404=True)
            if not isinstance(data, dict):
                return None
            for table in ("new", "tried"):
                matching = out.get(table, (0, 0))[0] + int(data[table]["matching"])
                out[table] = (matching, int(data[table]["slots"]))
        return out

    async def misbehaviour(self, ep: Endpoint) -> list[dict[str, Any]]:
        """Every misbehaviour the node charged: address, reason, points, score, action, time."""
        data = await self.request(ep, "GET", "/misbehaviour")
        return list(data) if isinstance(data, list) else []

    async def pause(self, ep: Endpoint) -> None:
        await self.request(ep, "POST", "/pause", {})

    async def resume(self, ep: Endpoint) -> None:
        await self.request(ep, "POST", "/resume", {})

    async def shutdown(self, ep: Endpoint, keep_control: bool = False) -> None:
        """``keep_control``: the node's control site stays up for `start` (a node packed in a pod)."""
        await self.request(ep, "POST", "/shutdown", {"keep_control": True} if keep_control else {}, retries=0)

    async def start(self, ep: Endpoint, wipe_datadir: bool = False) -> None:
        """A node stopped with ``keep_control`` starts again in its host (same config and control site)."""
        await self.request(ep, "POST", "/start", {"wipe_datadir": wipe_datadir}, retries=0)

    async def restart(self, ep: Endpoint, wipe_datadir: bool = False) -> None:
        """The node stops and starts again in its host (same config and control site)."""
        await self.request(ep, "POST", "/restart", {"wipe_datadir": wipe_datadir}, retries=0)

    # --- seeder API -----------------------------------------------------------------------------
    async def attacker_data(self, ep: Endpoint, since: float | None = None) -> dict[str, Any]:
        """An attacker identity's bulk data (GET /data: the spy's views; `since`: only what it
        recorded at or after that unix time, e.g. the `now` of the previous answer)."""
        return await self.request(ep, "GET", "/data" + (f"?since={since!r}" if since is not None else ""))

    async def attacker_identities(self, ep: Endpoint) -> dict[str, dict[str, Any]]:
        """/status of every identity served by the process behind this identity's site."""
        return await self.request(ep, "GET", "/identities")

    async def seeder_status(self, ep: Endpoint) -> dict[str, Any]:
        return await self.request(ep, "GET", "/status")

    async def seeder_mode(self, ep: Endpoint, mode: str) -> None:
        await self.request(ep, "POST", "/mode", {"mode": mode})

    # --- many nodes at once ---------------------------------------------------------------------
    async def gather(
        self, endpoints: Iterable[Endpoint], call: Callable[[Endpoint], Awaitable[T]]
    ) -> dict[str, T | ControlAPIError]:
        """``call`` on every endpoint concurrently; a failure is returned in place, not raised."""
        eps = list(endpoints)

        async def one(ep: Endpoint) -> T | ControlAPIError:
            try:
                return await call(ep)
            except ControlAPIError as e:
                return e

        results = await asyncio.gather(*(one(ep) for ep in eps))
        return {ep.name: r for ep, r in zip(eps, results)}


def _ban_list(data: Any) -> list[dict[str, Any]]:
    """A node's ban list; a bitcoind's supervisor answers {"bans": [...]}."""
    return list(data.get("bans", []) if isinstance(data, dict) else data or [])


def _chunks(wanted: Sequence[tuple[str, str]]) -> list[list[tuple[str, str]]]:
    wanted = list(wanted)
    return [wanted[i:i + MAX_ITEMS_PER_REQUEST] for i in range(0, len(wanted), MAX_ITEMS_PER_REQUEST)]


def _items_query(chunk: Sequence[tuple[str, str]]) -> str:
    query = {kind: ",".join(i for k, i in chunk if k == kind) for kind in ("tx", "block")}
    return urlencode({k: v for k, v in query.items() if v})


def _item_records(got: Any, chunk: Sequence[tuple[str, str]]) -> dict[tuple[str, str], dict[str, Any] | None]:
    """GET /items' answer ({"tx": {id: record}, "block": ...}) -> (kind, id) -> record or None."""
    out: dict[tuple[str, str], dict[str, Any] | None] = {}
    got = got if isinstance(got, dict) else {}
    for kind, i in chunk:
        rec = (got.get(kind) or {}).get(i)
        out[(kind, i)] = _item_record(rec) if rec is not None else None
    return out


def _item_record(rec: dict[str, Any]) -> dict[str, Any]:
    first_seen = rec["first_seen_ns"] / 1e9 if "first_seen_ns" in rec else rec.get("first_seen")
    return {"first_seen": first_seen, "from_peer": rec.get("from_peer"),
            "delay": rec.get("propagation_delay_s", rec.get("delay"))}


def call_sync(token: str | None, call: Callable[[ControlClient], Awaitable[T]], timeout: float = REQUEST_TIMEOUT_SECONDS) -> T:
    """Run one client call from synchronous code (backends, CLI) with its own short-lived session.

    Called from a thread when an event loop is already running (the controller uses to_thread).
    """

    async def main() -> T:
        async with ControlClient(token, timeout=timeout) as client:
            return await call(client)

    return asyncio.run(main())
