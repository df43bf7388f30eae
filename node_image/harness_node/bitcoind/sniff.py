"""Message capture of a real bitcoind from the outside: its TCP traffic read off the interface,
reassembled per connection and split into P2P messages, written by the light node's own writer
(net/capture.py) so `harness messages` reads it unchanged (docs/capture.md).

Why from the outside: the bitcoind we run (Bitcoin SV 1.0.13) has no `-capturemessages`. A packet
socket (AF_PACKET, needs CAP_NET_RAW) on the member's interface sees every packet; a kernel filter
(classic BPF) passes only TCP packets to or from the member's address or one of its `-connect` peers.

Which connections are the member's:
- inbound: one end is its P2P address (ip:port), where only bitcoind listens;
- outbound: bitcoind does not bind its outgoing sockets, so on loopback they leave from 127.0.0.1,
  as anyone's may; a connection to a `-connect` peer is the member's only if bitcoind's process
  owns the socket (its /proc fd table against /proc/net/tcp), checked once per connection.

Reassembly: per connection and direction from the SYN (or from the first packet seen, when capture
starts on an open connection: then the stream is searched for the magic and a frame whose checksum
holds). Retransmitted bytes are cut off; a segment beyond a gap waits until the gap fills, and if it
never does (packets the socket dropped), the stream resumes after it and searches for the next frame.
On loopback each packet passes the packet socket twice (out and in): the outgoing copy is skipped.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import socket
import struct
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

from ..net.capture import MessageCapture
from ..wire.codec import HEADER_SIZE, FramingError, checksum, parse_header

log = logging.getLogger(__name__)

ETH_P_IP = 0x0800
PACKET_OUTGOING = 4  # linux/if_packet.h: sll_pkttype of a packet this host sends
SO_ATTACH_FILTER = 26
SO_RCVBUFFORCE = 33
RCVBUF_BYTES = 16 * 1024 * 1024  # a paused supervisor must not lose the packets of its pause
READ_TIMEOUT_S = 0.2  # how soon stop() is noticed
MAX_PACKET = 65536 + 256  # loopback MTU 65536
MAX_PENDING_BYTES = 8 * 1024 * 1024  # out-of-order bytes held per stream before a gap is given up
SEQ_MOD = 1 << 32
TCP_FIN, TCP_SYN, TCP_RST, TCP_ACK = 0x01, 0x02, 0x04, 0x10
MAX_FLOWS = 10_000  # verdicts kept (connections not the member's included); cleared when exceeded

Endpoint = tuple[str, int]  # ip, port


# --- the kernel filter ----------------------------------------------------------------------------

def _insn(code: int, jt: int, jf: int, k: int) -> bytes:
    return struct.pack("HBBI", code, jt, jf, k)


def bpf_filter(addresses: Iterable[str]) -> bytes:
    """Classic BPF over an IPv4 packet (SOCK_DGRAM: no link header): accept TCP packets whose source
    or destination is one of ``addresses``, drop everything else."""
    ips = sorted({int(ipaddress.IPv4Address(a)) for a in addresses})
    if not ips or len(ips) > 100:  # jump offsets are 8 bits
        raise ValueError(f"the capture filter takes 1 to 100 addresses, got {len(ips)}")
    LDB_ABS, LDW_ABS, JEQ_K, RET_K = 0x30, 0x20, 0x15, 0x06
    n = len(ips)
    # 0: ldb [9]; 1: jeq #6 ? 2 : drop; 2: ld [12]; 3..: jeq ip ? accept; ld [16]; jeq ip ? accept; drop; accept
    prog = [_insn(LDB_ABS, 0, 0, 9)]
    drop = 2 + 1 + n + 1 + n  # index of the drop instruction
    prog.append(_insn(JEQ_K, 0, drop - 2, 6))
    prog.append(_insn(LDW_ABS, 0, 0, 12))
    for i, ip in enumerate(ips):
        here = 3 + i
        prog.append(_insn(JEQ_K, drop + 1 - here - 1, 0, ip))
    prog.append(_insn(LDW_ABS, 0, 0, 16))
    for i, ip in enumerate(ips):
        here = 3 + n + 1 + i
        prog.append(_insn(JEQ_K, drop + 1 - here - 1, 0, ip))
    prog.append(_insn(RET_K, 0, 0, 0))
    prog.append(_insn(RET_K, 0, 0, MAX_PACKET))
    return b"".join(prog)


def _attach(sock: socket.socket, program: bytes) -> None:
    import ctypes

    buf = ctypes.create_string_buffer(program)
    fprog = struct.pack("HL", len(program) // 8, ctypes.addressof(buf))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)


# --- which connections are the member's -----------------------------------------------------------

def _hex_endpoint(ep: Endpoint) -> str:
    """/proc/net/tcp's spelling of an IPv4 ip:port (the address in host byte order, little-endian)."""
    return f"{struct.unpack('<I', socket.inet_aton(ep[0]))[0]:08X}:{ep[1]:04X}"


def owns_connection(pid: int, local: Endpoint, remote: Endpoint) -> bool:
    """Does process ``pid`` hold the TCP socket local -> remote? (its fds against its netns's tcp table)"""
    want = f"{_hex_endpoint(local)} {_hex_endpoint(remote)}"
    inode = None
    try:
        with open(f"/proc/{pid}/net/tcp") as table:
            for line in table:
                fields = line.split()
                if len(fields) > 9 and f"{fields[1]} {fields[2]}" == want:
                    inode = fields[9]
                    break
        if inode is None or inode == "0":
            return False
        target = f"socket:[{inode}]"
        fd_dir = f"/proc/{pid}/fd"
        for fd in os.listdir(fd_dir):
            try:
                if os.readlink(f"{fd_dir}/{fd}") == target:
                    return True
            except OSError:
                continue  # closed meanwhile
    except OSError:
        return False
    return False


# --- one direction of a connection: TCP bytes in order, then P2P frames ----------------------------

class _Stream:
    __slots__ = ("next_seq", "pending", "pending_bytes", "buf", "synced", "magic")

    def __init__(self, magic: bytes) -> None:
        self.magic = magic
        self.next_seq: int | None = None
        self.pending: dict[int, bytes] = {}  # out-of-order segments by sequence number
        self.pending_bytes = 0
        self.buf = bytearray()
        self.synced = False  # at a frame boundary (from the SYN, or after a frame whose checksum held)

    def syn(self, seq: int) -> None:
        self.next_seq = (seq + 1) % SEQ_MOD
        self.pending.clear()
        self.pending_bytes = 0
        self.buf.clear()
        self.synced = True

    def segment(self, seq: int, data: bytes) -> list[tuple[str, bytes]]:
        """The frames ``data`` (at ``seq``) completes, in order."""
        if self.next_seq is None:  # capture started on an open connection
            self.next_seq = seq
        offset = ((seq - self.next_seq + SEQ_MOD // 2) % SEQ_MOD) - SEQ_MOD // 2
        if offset < 0:  # a retransmission: keep only what is new
            data = data[-offset:]
            seq = self.next_seq
            offset = 0
        if not data:
            return []
        if offset > 0:
            if seq not in self.pending:
                self.pending[seq] = data
                self.pending_bytes += len(data)
            if self.pending_bytes <= MAX_PENDING_BYTES:
                return []
            # the gap never filled: resume at the earliest held segment, out of sync
            seq = min(self.pending, key=lambda s: (s - self.next_seq) % SEQ_MOD)
            data = self.pending.pop(seq)
            self.pending_bytes -= len(data)
            self.buf.clear()
            self.synced = False
        self.buf += data
        self.next_seq = (seq + len(data)) % SEQ_MOD
        while self.pending:  # held segments that now follow on
            ready = [s for s in self.pending if ((s - self.next_seq + SEQ_MOD // 2) % SEQ_MOD) - SEQ_MOD // 2 <= 0]
            if not ready:
                break
            for s in ready:
                held = self.pending.pop(s)
                self.pending_bytes -= len(held)
                cut = (self.next_seq - s) % SEQ_MOD
                if cut < len(held):
                    self.buf += held[cut:]
                    self.next_seq = (s + len(held)) % SEQ_MOD
        return self._frames()

    def _frames(self) -> list[tuple[str, bytes]]:
        out: list[tuple[str, bytes]] = []
        buf = self.buf
        pos = 0
        while True:
            if not self.synced:
                found = buf.find(self.magic, pos)
                if found < 0:
                    pos = max(pos, len(buf) - len(self.magic) + 1)
                    break
                pos = found
            if len(buf) - pos < HEADER_SIZE:
                break
            try:
                header = parse_header(self.magic, bytes(buf[pos:pos + HEADER_SIZE]))
            except FramingError:  # lost (a spammer's garbage, or a gap): look for the next frame
                self.synced = False
                pos += 1
                continue
            end = pos + HEADER_SIZE + header.length
            if len(buf) < end:
                break
            payload = bytes(buf[pos + HEADER_SIZE:end])
            command = header.command_name
            if checksum(payload) != header.checksum or command is None:
                if not self.synced:  # not a frame after all: search on from the next byte
                    pos += 1
                    continue
                pos = end  # a bad frame in a synced stream: bitcoind drops it, and so does the record
                continue
            out.append((command, payload))
            self.synced = True
            pos = end
        del buf[:pos]
        return out


class _Flow:
    __slots__ = ("member", "peer", "sent", "recv", "closed")

    def __init__(self, member: Endpoint, peer: Endpoint, magic: bytes) -> None:
        self.member, self.peer = member, peer
        self.sent, self.recv = _Stream(magic), _Stream(magic)
        self.closed = 0  # FINs seen


# --- the sniffer ------------------------------------------------------------------------------------

class Sniffer:
    """Captures the member's messages on a thread of its own until ``stop``.

    ``member``: bitcoind's P2P address; ``connect``: its -connect peers; ``pid``: bitcoind's process
    (a callable: a restarted bitcoind has a new one); ``excluded_ports``: its other ports on its
    address (RPC, control API), never P2P."""

    def __init__(self, capture: MessageCapture, interface: str, member: Endpoint, connect: Iterable[Endpoint],
                 pid: Callable[[], int | None], magic: bytes, excluded_ports: Iterable[int] = ()) -> None:
        self.capture = capture
        self.interface = interface
        self.member = member
        self.connect = set(connect)
        self.pid = pid
        self.magic = magic
        self.excluded = set(excluded_ports)
        self.flows: dict[tuple[Endpoint, Endpoint], _Flow | None] = {}  # (member side, peer) -> flow, None: not ours
        self.packets = 0
        self.skipped_outgoing = 0
        self._stop = threading.Event()
        self._sock = self._open()
        self._thread = threading.Thread(target=self._run, name=f"sniff-{member[0]}", daemon=True)

    def _open(self) -> socket.socket:
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_IP))
        try:
            try:
                sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, RCVBUF_BYTES)
            except OSError:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF_BYTES)
            _attach(sock, bpf_filter([self.member[0], *(ip for ip, _ in self.connect)]))
            sock.bind((self.interface, ETH_P_IP))
            sock.settimeout(READ_TIMEOUT_S)
        except BaseException:
            sock.close()
            raise
        return sock

    def start(self) -> "Sniffer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(READ_TIMEOUT_S * 10)
        self._sock.close()

    def _run(self) -> None:
        loopback = self.interface == "lo"
        while not self._stop.is_set():
            try:
                data, addr = self._sock.recvfrom(MAX_PACKET)
            except socket.timeout:
                continue
            except OSError:
                if self._stop.is_set():
                    return
                raise
            if loopback and addr[2] == PACKET_OUTGOING:  # the same packet comes back in on lo
                self.skipped_outgoing += 1
                continue
            self.packets += 1
            try:
                self.packet(data)
            except Exception:  # one odd packet must not end the capture
                log.exception("capture: packet not understood")

    def packet(self, data: bytes) -> None:
        """One IPv4 packet (as the filter passed it)."""
        if len(data) < 20 or data[0] >> 4 != 4 or data[9] != socket.IPPROTO_TCP:
            return
        ihl = (data[0] & 0x0F) * 4
        total = struct.unpack_from("!H", data, 2)[0] or len(data)
        src, dst = socket.inet_ntoa(data[12:16]), socket.inet_ntoa(data[16:20])
        if len(data) < ihl + 20:
            return
        sport, dport, seq = struct.unpack_from("!HHI", data, ihl)
        doff = (data[ihl + 12] >> 4) * 4
        flags = data[ihl + 13]
        payload = data[ihl + doff:total]
        a, b = (src, sport), (dst, dport)
        if flags & (TCP_SYN | TCP_ACK) == TCP_SYN:  # a new connection: whatever used these ends before is gone
            self.flows.pop((a, b), None)
            self.flows.pop((b, a), None)
        flow, sent = self._flow(a, b, payload or flags & TCP_SYN)
        if flow is None:
            return
        stream = flow.sent if sent else flow.recv
        if flags & TCP_SYN:
            stream.syn(seq)
            return
        if payload:
            direction = "sent" if sent else "recv"
            peer = f"{flow.peer[0]}:{flow.peer[1]}"
            for command, body in stream.segment(seq, payload):
                self.capture.record(peer, direction, command, body)
        if flags & TCP_RST or (flags & TCP_FIN and flow.closed >= 1):
            self.flows.pop((flow.member, flow.peer), None)
        elif flags & TCP_FIN:
            flow.closed += 1

    def _flow(self, a: Endpoint, b: Endpoint, new_ok: object) -> tuple[_Flow | None, bool]:
        """The member's connection this packet a -> b belongs to, and whether the member sent it."""
        for member_side, peer, sent in ((a, b, True), (b, a, False)):
            key = (member_side, peer)
            if key in self.flows:
                return self.flows[key], sent
        if not new_ok:  # a bare ACK of a connection we never saw open: wait for data or a SYN
            return None, False
        for member_side, peer, sent in ((a, b, True), (b, a, False)):
            ours = (member_side == self.member
                    or (member_side[0] == self.member[0] and member_side[1] not in self.excluded
                        and peer[1] not in self.excluded)
                    or (peer in self.connect and self._owned(member_side, peer)))
            if ours:
                flow = _Flow(member_side, peer, self.magic)
                self._remember((member_side, peer), flow)
                return flow, sent
        # not the member's (light nodes among themselves): remember that, in the member-side spelling
        # that the peer check used, so later packets cost a lookup
        for member_side, peer in ((a, b), (b, a)):
            if peer in self.connect or member_side == self.member:
                self._remember((member_side, peer), None)
        return None, False

    def _owned(self, local: Endpoint, remote: Endpoint) -> bool:
        pid = self.pid()
        return pid is not None and owns_connection(pid, local, remote)

    def _remember(self, key: tuple[Endpoint, Endpoint], flow: _Flow | None) -> None:
        if len(self.flows) >= MAX_FLOWS:
            self.flows = {k: f for k, f in self.flows.items() if f is not None}
        self.flows[key] = flow

    def info(self) -> dict[str, int]:
        return {"packets": self.packets, "connections": sum(1 for f in self.flows.values() if f is not None)}


def available(interface: str) -> str | None:
    """None if a packet socket can be opened on ``interface`` here, else why not."""
    if not interface:
        return "no capture interface configured (capture of a bitcoind member works on the local backend)"
    if not Path(f"/sys/class/net/{interface}").exists():
        return f"no network interface {interface!r}"
    try:
        socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_IP)).close()
    except PermissionError:
        return "opening a packet socket needs CAP_NET_RAW (run the harness as root)"
    except OSError as e:
        return f"cannot open a packet socket: {e}"
    return None
