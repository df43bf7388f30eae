"""What every attacker kind builds on: the kind registry, the `Attacker` base class (one identity,
its targets, its typed params, its metrics) and `AttackPeer`, the client peer that dials from the
identity's address and counts what it sends.

A kind is a subclass with `async run()`, registered with its params dataclass:

    @ATTACKS.register("spam", params=SpamParams)
    class SpamAttacker(Attacker):
        async def run(self) -> None: ...

Params are built with `dictconfig.from_mapping`: unknown keys are refused with the field named.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from ..dictconfig import from_mapping
from ..net.client import ClientPeer
from ..wire.codec import NetAddr
from ..wire.messages import Message
from .config import AttackConfig, AttackConfigError, AttackerSpec
from .metrics import AttackerMetrics

A = TypeVar("A", bound="type[Attacker]")
RETRY_INTERVAL = 0.5  # s between dials of a target that is not listening yet


@dataclass
class NoParams:
    """The params of a kind that takes none."""


@dataclass
class AttackKind:
    name: str
    cls: "type[Attacker]"
    params: type
    description: str = ""


class AttackRegistry:
    def __init__(self) -> None:
        self.kinds: dict[str, AttackKind] = {}

    def register(self, name: str, params: type = NoParams, description: str = "") -> Callable[[A], A]:
        def deco(cls: A) -> A:
            if name in self.kinds:
                raise ValueError(f"attacker kind {name!r} registered twice")
            cls.kind = name
            self.kinds[name] = AttackKind(name, cls, params, description or (cls.__doc__ or "").strip())
            return cls
        return deco

    def get(self, name: str) -> AttackKind:
        if name not in self.kinds:
            raise AttackConfigError(f"unknown attacker kind {name!r}; known: {sorted(self.kinds)}")
        return self.kinds[name]

    def build(self, spec: AttackerSpec, config: AttackConfig) -> "Attacker":
        kind = self.get(spec.kind)
        params = kind.params.from_dict(spec.params) if hasattr(kind.params, "from_dict") else \
            from_mapping(kind.params, spec.params, f"{spec.name}.params", AttackConfigError)
        return kind.cls(spec, params, config)


ATTACKS = AttackRegistry()


class AttackPeer(ClientPeer):
    """A client peer owned by one attacker identity: sends are counted in its metrics, and the
    victim closing the link is recorded (`closed_by_victim`)."""

    def __init__(self, owner: "Attacker", **kwargs: Any) -> None:
        super().__init__(owner.config.magic_bytes, **kwargs)
        self.owner = owner
        self.target = ""
        self.behaviour = owner.behaviour  # the metrics' behaviour label, fixed when the link opens
        self.closed_by_us = False

    def send(self, msg: Message) -> None:
        before = self.bytes_out
        super().send(msg)
        if self.bytes_out > before:
            self.owner.metrics.sent(self.behaviour, msg.command, self.bytes_out - before)

    def send_forged(self, data: bytes) -> None:
        """Bytes that are not one well-formed frame (garbage, truncated, bad checksum...)."""
        before = self.bytes_out
        self.send_raw(data)
        if self.bytes_out > before:
            self.owner.metrics.sent(self.behaviour, "raw", self.bytes_out - before)

    def send_frame(self, command: str | bytes, payload: bytes, **kwargs: Any) -> None:
        before = self.bytes_out
        super().send_frame(command, payload, **kwargs)
        if self.bytes_out > before:
            self.owner.metrics.sent(self.behaviour, "raw", self.bytes_out - before)

    @property
    def closed_by_victim(self) -> bool:
        return self.closed and not self.closed_by_us

    async def close(self, reason: str = "closed by us") -> None:
        # The frame loop closes too when the victim hangs up (EOF, reset): that close is theirs.
        if not self.closed and asyncio.current_task() not in self._tasks:
            self.closed_by_us = True
        await super().close(reason)

    def on_close(self, reason: str) -> None:
        self.owner.peer_closed(self)


class Attacker:
    """One attacker identity. Subclasses implement `run()`; `status()` may add kind-specific detail."""

    kind: ClassVar[str] = ""

    def __init__(self, spec: AttackerSpec, params: Any, config: AttackConfig) -> None:
        self.spec, self.params, self.config = spec, params, config
        self.name = spec.name
        self.metrics = AttackerMetrics(spec.group or spec.name, self.kind)
        self.behaviour = self.kind  # the metrics' behaviour label for new links; kinds with a catalogue set it
        self.peers: list[AttackPeer] = []
        self.started_at: float | None = None
        self.finished_at: float | None = None
        self.error: str | None = None
        self.events: list[dict[str, Any]] = []  # recent notable events, for /status

    # --- the kind's part -------------------------------------------------------------------------
    async def run(self) -> None:
        raise NotImplementedError

    def detail(self) -> dict[str, Any]:
        """Kind-specific part of /status."""
        return {}

    def data(self, since: float | None = None) -> dict[str, Any]:
        """Kind-specific bulk data for GET /data (read rarely: the controller polls /status every
        few seconds, and a spy's views grow with every transaction); `since` (unix s): only what was
        recorded at or after it, and the kind says what that means."""
        return {}

    # --- helpers for kinds -----------------------------------------------------------------------
    def scaled(self, seconds: float) -> float:
        """Scenario seconds -> wall seconds under the network's time_scale."""
        return seconds * self.config.time_scale

    def target_name(self, target: str) -> str:
        names = self.spec.target_names
        return names[self.spec.targets.index(target)] if names and target in self.spec.targets else target

    def own_address(self, services: int = 0) -> NetAddr:
        """This identity's planned address, as a `version`'s addr_from names it."""
        return NetAddr(self.spec.address, self.spec.port, services)

    def new_peer(self, peer_cls: "type[AttackPeer] | None" = None, **kwargs: Any) -> AttackPeer:
        """A peer naming this identity's planned address in version (when the transport differs);
        `peer_cls`: a kind's AttackPeer subclass with its own message handlers."""
        if self.spec.bind and self.spec.bind != self.spec.address:
            kwargs.setdefault("addr_from", self.own_address())
        return (peer_cls or AttackPeer)(self, **kwargs)

    async def dial(self, target: str, *, handshake: bool = True, timeout: float = 5.0, retry_for: float = 0.0,
                   **kwargs: Any) -> AttackPeer:
        """Connect to planned `target` ("ip:port") from this identity's source address; with
        `handshake`, complete version/verack. A refused or timed-out dial is retried every
        RETRY_INTERVAL for `retry_for` seconds (targets still starting). Raises OSError/TimeoutError/
        ConnectionError; a connection the victim closes during the handshake counts as `refused`."""
        peer = self.new_peer(**kwargs)
        peer.target = target
        host, port = self.config.dial_endpoint(target)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + retry_for
        while True:
            try:
                await peer.connect(host, port, timeout=timeout, local_ip=self.spec.source_ip)
                break
            except (OSError, asyncio.TimeoutError):
                self.metrics.connection("failed")
                if loop.time() + RETRY_INTERVAL > deadline:
                    raise
                await asyncio.sleep(RETRY_INTERVAL)
        self.metrics.connection("connected")
        self.peers.append(peer)
        self.metrics.set_open(self.open_count())
        if handshake:
            try:
                await peer.handshake(timeout)
            except (ConnectionError, TimeoutError):
                await peer.close("handshake failed")
                raise
        return peer

    def peer_closed(self, peer: AttackPeer) -> None:
        if not peer.closed_by_us:
            self.metrics.saw("refused" if peer.their_version is None else "disconnected")
        if peer in self.peers:  # keep only live links: a flood must not grow this list forever
            self.peers.remove(peer)
        self.metrics.set_open(self.open_count())

    @staticmethod
    async def until_closed(peer: AttackPeer) -> None:
        """Wait, however long, until ``peer``'s connection is closed (by either side)."""
        while not peer.closed:
            with contextlib.suppress(asyncio.TimeoutError, TimeoutError):
                await peer.wait_closed(timeout=3600.0)

    async def hold_inbound(self, peer: AttackPeer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                           live: set[Any]) -> None:
        """A victim dialled us: serve ``peer`` on the connection, in ``live`` until it closes."""
        peer.attach(reader, writer)
        live.add(peer)
        self.metrics.connection("connected")
        await self.until_closed(peer)
        live.discard(peer)

    def open_count(self) -> int:
        return sum(1 for p in self.peers if not p.closed)

    def note(self, event: str, **data: Any) -> None:
        """An event for /status (bounded: the last 1000)."""
        self.events.append({"time": time.time(), "event": event, **data})
        del self.events[:-1000]

    async def close_all(self) -> None:
        await asyncio.gather(*(p.close("attacker stopping") for p in self.peers if not p.closed),
                             return_exceptions=True)
        self.peers = [p for p in self.peers if not p.closed]

    async def main(self) -> None:
        """run() with bookkeeping: times, the error if it fails, connections closed at the end."""
        self.started_at = time.time()
        try:
            await self.run()
        except asyncio.CancelledError:
            raise
        except Exception as e:  # an attacker's failure is reported in /status, never crashes the process
            self.error = f"{type(e).__name__}: {e}"
        finally:
            self.finished_at = time.time()
            with contextlib.suppress(Exception):
                await self.close_all()
            self.metrics.set_open(self.open_count())

    def status(self) -> dict[str, Any]:
        return {
            "name": self.name, "kind": self.kind, "role": "attacker", "address": self.spec.address,
            "targets": list(self.spec.targets), "started_at": self.started_at, "finished_at": self.finished_at,
            "running": self.started_at is not None and self.finished_at is None, "error": self.error,
            "peers": [{"address": p.target, "direction": "outbound", "kind": "attack",
                       "handshake": p.handshake_done} for p in self.peers if not p.closed],
            "detail": self.detail(),
        }
