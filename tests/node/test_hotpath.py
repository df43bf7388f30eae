"""The relay hot path's shortcuts (issue 17) give the same bytes and decisions as the plain code.

Checked against independent computations (hashlib, struct, BytesIO readers), not against the
shortcuts themselves; the batch of flushes runs on a real event loop.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import struct
from io import BytesIO

import pytest

from harness_node.net.connection import WriteBatch
from harness_node.net.stats import NodeStats
from harness_node.wire import codec
from harness_node.wire.codec import (
    MAGIC_BSV_REGTEST, MAGIC_REGTEST, DecodeError, FrameDecoder, FramingError, checksum, compact_size, compact_size_at, frame,
    frame_cache_size, frame_shared, parse_header, read_compact_size,
)
from harness_node.wire import messages
from harness_node.wire.messages import (
    MESSAGEMAP, MSG_TX, MSG_WTX, CInv, decode, msg_dandeliontx, msg_getaddr, msg_getdata, msg_inv, msg_ping,
    msg_sendaddrv2, msg_sendheaders, msg_verack, msg_wtxidrelay,
)
from harness_node.wire.synthetic import make_tx


def sha256d_sum(b: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(b).digest()).digest()[:4]


@pytest.mark.parametrize("size", [0, 1, 37, codec.SUM_CACHE_MAX_PAYLOAD, codec.SUM_CACHE_MAX_PAYLOAD + 1, 5000])
def test_checksum_is_sha256d_whether_memoised_or_not(size: int) -> None:
    payload = os.urandom(size)
    assert checksum(payload) == sha256d_sum(payload)
    assert checksum(payload) == sha256d_sum(payload)  # the second call comes from the memo (if small)
    assert checksum(bytearray(payload)) == sha256d_sum(payload)  # unhashable: computed, not memoised


def test_checksum_memo_stays_bounded_under_unique_payloads() -> None:
    for i in range(3 * codec.SUM_CACHE_ENTRIES):
        checksum(i.to_bytes(8, "little"))
        assert len(codec._SUMS) <= codec.SUM_CACHE_ENTRIES
    big = os.urandom(codec.SUM_CACHE_MAX_PAYLOAD + 1)
    checksum(big)
    assert big not in codec._SUMS


def test_a_tx_payload_is_parsed_once_per_process_with_its_own_hashes() -> None:
    raw = make_tx(size=400).raw
    first = decode("tx", bytes(raw)).tx  # each node's payload is its own bytes object
    second = decode("tx", bytes(raw)).tx
    assert second is first  # shared, not parsed again
    # the hashes are the wire's, computed independently (no witness: txid == wtxid == sha256d(raw))
    assert first.txid == first.wtxid == hashlib.sha256(hashlib.sha256(raw).digest()).digest()
    assert first.raw == raw and (first.n_in, first.n_out) == (1, len(first.outputs))
    unhashable = decode("tx", bytearray(raw)).tx  # a bytearray is parsed, not looked up or kept
    assert unhashable is not first and unhashable.txid == first.txid
    with pytest.raises(DecodeError):
        decode("tx", raw[:-5])  # truncated: still an error, every time, and nothing kept
    with pytest.raises(DecodeError):
        decode("tx", raw[:-5])
    assert raw[:-5] not in messages._TXS


def test_the_tx_parse_memo_stays_bounded_under_unique_payloads() -> None:
    for _ in range(2 * messages.TX_CACHE_ENTRIES + 10):
        decode("tx", make_tx().raw)
        assert len(messages._TXS) <= messages.TX_CACHE_ENTRIES
    big = make_tx(size=messages.TX_CACHE_MAX_PAYLOAD + 1).raw
    assert decode("tx", big).tx.raw == big
    assert big not in messages._TXS


def test_one_entry_inv_frames_are_shared_and_longer_ones_are_not() -> None:
    one = msg_inv([CInv(MSG_WTX, os.urandom(32))]).serialize()
    first = frame_shared(MAGIC_REGTEST, "inv", bytes(one))
    assert first == frame(MAGIC_REGTEST, "inv", one)
    assert frame_shared(MAGIC_REGTEST, "inv", bytes(one)) is first  # another node's equal payload
    getdata = msg_getdata([CInv(MSG_TX, os.urandom(32))]).serialize()
    assert frame_shared(MAGIC_REGTEST, "getdata", getdata) is frame_shared(MAGIC_REGTEST, "getdata", bytes(getdata))
    entries = frame_cache_size()[0]
    two = msg_inv([CInv(MSG_TX, os.urandom(32)), CInv(MSG_TX, os.urandom(32))]).serialize()
    assert frame_shared(MAGIC_REGTEST, "inv", two) == frame(MAGIC_REGTEST, "inv", two)
    assert frame_cache_size()[0] == entries  # a diffusion flush is one peer's: not cached


def test_a_handshakes_empty_messages_are_framed_once_per_magic() -> None:
    for message in (msg_verack(), msg_wtxidrelay(), msg_sendaddrv2(), msg_sendheaders(), msg_getaddr()):
        first = frame_shared(MAGIC_REGTEST, message.command, message.serialize())
        assert first == frame(MAGIC_REGTEST, message.command, b"")
        assert frame_shared(MAGIC_REGTEST, message.command, b"") is first
        other = frame_shared(MAGIC_BSV_REGTEST, message.command, b"")
        assert other[:4] == MAGIC_BSV_REGTEST and other[4:] == first[4:]
    ping = msg_ping(7).serialize()  # a payload of its own: framed every time, not kept
    entries = frame_cache_size()[0]
    assert frame_shared(MAGIC_REGTEST, "ping", ping) == frame(MAGIC_REGTEST, "ping", ping)
    assert frame_cache_size()[0] == entries


def test_a_messages_command_is_its_msgtype_as_text() -> None:
    for msgtype, cls in MESSAGEMAP.items():
        assert cls.command == msgtype.decode() and cls.command.encode() == msgtype
    assert msg_verack().command == "verack" and msg_dandeliontx.command == "dandeliontx"


@pytest.mark.parametrize("value", [0, 0xFC, 0xFD, 0xFFFF, 0x10000, 0xFFFFFFFF, 0x1_0000_0000])
def test_compact_size_at_reads_what_the_stream_reader_reads(value: int) -> None:
    raw = b"\xaa" + compact_size(value) + b"rest"
    f = BytesIO(raw)
    f.read(1)
    assert compact_size_at(raw, 1) == (read_compact_size(f), f.tell())


@pytest.mark.parametrize("raw", [b"", b"\xfd\x01", b"\xfd\xfc\x00", b"\xfe\xff\xff\x00\x00", b"\xff" + b"\x00" * 8])
def test_compact_size_at_rejects_truncated_and_non_canonical_like_the_stream_reader(raw: bytes) -> None:
    with pytest.raises(DecodeError):
        read_compact_size(BytesIO(raw))
    with pytest.raises(DecodeError):
        compact_size_at(raw)


def test_inv_bytes_match_the_wire_format_both_ways() -> None:
    entries = [(MSG_TX, os.urandom(32)), (MSG_WTX, os.urandom(32)), (2, os.urandom(32))]
    for n in (0, 1, 3):
        wire = compact_size(n) + b"".join(struct.pack("<I", t) + h for t, h in entries[:n])
        assert msg_inv([CInv(t, h) for t, h in entries[:n]]).serialize() == wire
        got = decode("inv", wire + b"trailing bytes are ignored, as before")
        assert [(i.type, i.hash) for i in got.inv] == entries[:n]
    with pytest.raises(DecodeError):
        decode("getdata", compact_size(2) + struct.pack("<I", 1) + os.urandom(32))  # one entry short
    with pytest.raises(DecodeError):
        decode("inv", b"")


def test_message_counters_keep_each_direction_and_command_apart() -> None:
    """NodeStats counts under a small int per (direction, label); what it shows (the metrics read
    `message_counts`, `processing`; tests `msgs`, `bytes`) must be exactly what was counted, labelled, with commands outside
    the known set under "other" and a pair never counted reading 0."""
    stats = NodeStats()
    stats.count_received("inv", 61, 0.5)
    stats.count_received("inv", 61, 0.25)
    stats.count_sent("inv", 61, 3)  # one flood inv to three peers
    stats.count_sent("tx", 300)
    stats.count_received("bogus1", 30, 1.0)
    stats.count_received("bogus2", 40, 2.0)
    stats.count_sent("bogus3", 50)
    assert dict(stats.msgs) == {("in", "inv"): 2, ("out", "inv"): 3, ("out", "tx"): 1,
                                ("in", "other"): 2, ("out", "other"): 1}
    assert dict(stats.bytes) == {("in", "inv"): 122, ("out", "inv"): 183, ("out", "tx"): 300,
                                 ("in", "other"): 70, ("out", "other"): 50}
    assert dict(stats.processing) == {"inv": 0.75, "other": 3.0}
    assert stats.messages_total == 9 and stats.processing_seconds == 3.75
    assert stats.msgs[("in", "getdata")] == 0 and stats.bytes[("out", "version")] == 0
    # what a scrape reads: the same pairs, sorted, with their counts and bytes
    assert stats.message_counts() == [("in", "inv", 2, 122), ("in", "other", 2, 70), ("out", "inv", 3, 183),
                                      ("out", "other", 1, 50), ("out", "tx", 1, 300)]


def test_header_parsed_in_place_at_an_offset() -> None:
    framed = frame(MAGIC_REGTEST, "ping", b"\x01" * 8)
    h = parse_header(MAGIC_REGTEST, b"xx" + framed, 2)
    assert (h.command_name, h.length, h.checksum) == ("ping", 8, sha256d_sum(b"\x01" * 8))
    with pytest.raises(FramingError):
        parse_header(b"\x00\x00\x00\x00", framed)
    # split anywhere: the decoder still finds both frames and checks their sums
    stream = framed + frame(MAGIC_REGTEST, "pong", b"\x02" * 8)
    for cut in range(len(stream)):
        d = FrameDecoder(MAGIC_REGTEST)
        frames = d.feed(stream[:cut]) + d.feed(stream[cut:])
        assert [(h.command_name, p, ok) for h, p, ok in frames] == [("ping", b"\x01" * 8, True), ("pong", b"\x02" * 8, True)]


def test_write_batch_flushes_every_queued_connection_once_per_loop_iteration() -> None:
    class Conn:
        def __init__(self, name: str, log: list[str]) -> None:
            self.name, self.log = name, log

        def _flush(self) -> None:
            self.log.append(self.name)

    async def main() -> list[list[str]]:
        loop = asyncio.get_running_loop()
        batch, log = WriteBatch(loop), []
        scheduled = []
        real_call_soon = loop.call_soon
        loop.call_soon = lambda cb, *a, **kw: scheduled.append(cb) or real_call_soon(cb, *a, **kw)  # count, still run
        try:
            for name in "abc":
                batch.add(Conn(name, log))
            await asyncio.sleep(0)
            first = list(log)
            batch.add(Conn("d", log))
            await asyncio.sleep(0)
        finally:
            del loop.call_soon
        return [first, log, [str(sum(cb == batch.run for cb in scheduled))]]  # (task steps go through it too)

    first, log, scheduled = asyncio.run(main())
    assert first == ["a", "b", "c"]  # all three in one callback, in queue order
    assert log == ["a", "b", "c", "d"]
    assert scheduled == ["2"]  # one callback per iteration, not one per connection


def test_write_batch_still_flushes_the_others_when_one_connection_raises() -> None:
    class Conn:
        def __init__(self, name: str, log: list[str], fail: bool = False) -> None:
            self.name, self.log, self.fail = name, log, fail

        def _flush(self) -> None:
            if self.fail:
                raise RuntimeError("boom")
            self.log.append(self.name)

    async def main() -> tuple[list[str], list[dict]]:
        loop = asyncio.get_running_loop()
        errors: list[dict] = []
        loop.set_exception_handler(lambda _loop, ctx: errors.append(ctx))
        batch, log = WriteBatch(loop), []
        for conn in (Conn("a", log), Conn("b", log, fail=True), Conn("c", log), Conn("d", log)):
            batch.add(conn)
        for _ in range(3):
            await asyncio.sleep(0)
        return log, errors

    log, errors = asyncio.run(main())
    assert log == ["a", "c", "d"]  # c and d went out in the next iteration
    assert len(errors) == 1 and str(errors[0]["exception"]) == "boom"  # and the failure was reported


def test_flush_to_a_transport_whose_handle_is_gone_drops_the_frames_quietly() -> None:
    """uvloop raises RuntimeError on write to a transport whose handle it closed after a reset while
    is_closing() is still False; the race cannot be produced on demand, so a stub transport raises
    exactly that (the one stand-in in this file)."""
    from types import SimpleNamespace

    from harness_node.net.connection import Connection

    class GoneTransport:
        writes = 0

        def is_closing(self) -> bool:
            return False

        def write(self, data: bytes) -> None:
            GoneTransport.writes += 1
            raise RuntimeError("unable to perform operation on <TCPTransport closed=True>; the handler is closed")

        def get_write_buffer_size(self) -> int:
            return 0

        def close(self) -> None:
            pass

    errors: list[dict] = []

    async def main() -> Connection:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda _loop, ctx: errors.append(ctx))
        owner = SimpleNamespace(loop=loop, magic=MAGIC_REGTEST, write_batch=WriteBatch(loop))
        conn = Connection(owner, inbound=True)  # type: ignore[arg-type]
        conn.transport = GoneTransport()  # type: ignore[assignment]
        conn._write(b"frame")
        await asyncio.sleep(0)
        conn._write(b"next")  # queued again: the connection was not left with stale frames
        await asyncio.sleep(0)
        conn._write(b"last words")
        conn.close("test")  # close flushes at once (from housekeeping's timeouts): must not raise either
        return conn

    conn = asyncio.run(main())
    assert GoneTransport.writes == 3 and not conn._pending
    assert errors == []  # nothing escaped to the loop (it did before: every reset logged a traceback)


def test_closed_is_done_once_the_connection_is_lost_whenever_it_is_first_asked_for():
    # the future is made on first use (memory); a node stopping waits on it, so it must resolve
    # both when made before the loss and when made after it
    from types import SimpleNamespace

    from harness_node.net.connection import Connection

    async def main() -> list[bool]:
        loop = asyncio.get_running_loop()
        owner = SimpleNamespace(loop=loop, magic=MAGIC_REGTEST, write_batch=WriteBatch(loop))
        early, late = Connection(owner, inbound=True), Connection(owner, inbound=True)  # type: ignore[arg-type]
        waiting = early.closed
        seen = [waiting.done()]
        early.connection_lost(None)
        late.connection_lost(None)
        await asyncio.wait_for(asyncio.wait([waiting, late.closed]), 1.0)
        return seen + [waiting.done(), late.closed.done(), early.closed is waiting]

    assert asyncio.run(main()) == [False, True, True, True]
