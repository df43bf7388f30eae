"""Blocks linked by prev hash: heights, the most-work (here: highest) tip, orphans, locators.

Validation is structural: proof of work against the header's bits, merkle root, a coinbase. Every
regtest block has the same work, so the longest chain wins and the first-seen block wins a tie.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..wire.messages import MAX_HEADERS_RESULTS, Block, BlockHeader, Tx, merkle_root
from ..wire.synthetic import meets_target

# Regtest genesis (kernel/chainparams.cpp CRegTestParams): the 2009 Times coinbase, nonce 2.
_GENESIS_COINBASE = bytes.fromhex(
    "01000000010000000000000000000000000000000000000000000000000000000000000000ffffffff4d04ffff001d"
    "0104455468652054696d65732030332f4a616e2f32303039204368616e63656c6c6f72206f6e206272696e6b206f66"
    "207365636f6e64206261696c6f757420666f722062616e6b73ffffffff0100f2052a01000000434104678afdb0fe55"
    "48271967f1a67130b7105cd6a828e03909a67962e0ea1f61deb649f6bc3f4cef38c4f35504e51ec112de5c384df7ba"
    "0b8d578a4c702b6bf11d5fac00000000")
MAX_ORPHAN_BLOCKS = 100  # testbed bound on blocks held until their parent arrives


def regtest_genesis() -> Block:
    cb = Tx.from_bytes(_GENESIS_COINBASE)
    header = BlockHeader(version=1, prev=b"\x00" * 32, merkle_root=cb.txid, time=1296688602,
                         bits=0x207FFFFF, nonce=2)
    return Block(header, [cb])


class BlockInvalid(ValueError):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason  # a misbehaviour.SCORES key


@dataclass
class AddResult:
    connected: list[Block] = field(default_factory=list)  # newly linked, parents first
    orphan: bool = False
    duplicate: bool = False
    new_tip: bool = False


def check_block(block: Block) -> None:
    if not meets_target(block.header):
        raise BlockInvalid("block-bad-pow", "hash above the target of its bits")
    if not block.txs:
        raise BlockInvalid("block-invalid", "no coinbase")
    if merkle_root([t.txid for t in block.txs]) != block.header.merkle_root:
        raise BlockInvalid("block-invalid", "merkle root mismatch")


class Chain:
    def __init__(self, genesis: Block | None = None) -> None:
        g = genesis or regtest_genesis()
        self.genesis = g
        self.blocks: dict[bytes, Block] = {g.hash: g}
        self.heights: dict[bytes, int] = {g.hash: 0}
        self.main: list[bytes] = [g.hash]  # main chain by height
        self.orphans: dict[bytes, list[Block]] = {}  # missing parent hash -> blocks
        self.orphan_count = 0

    @property
    def tip(self) -> Block:
        return self.blocks[self.main[-1]]

    @property
    def height(self) -> int:
        return len(self.main) - 1

    def has(self, h: bytes) -> bool:
        return h in self.blocks

    def get(self, h: bytes) -> Block | None:
        return self.blocks.get(h)

    def is_orphan(self, h: bytes) -> bool:
        return any(b.hash == h for bs in self.orphans.values() for b in bs)

    def add(self, block: Block) -> AddResult:
        """Store a checked block; link it and any orphans waiting for it. Raises BlockInvalid."""
        if block.hash in self.blocks or self.is_orphan(block.hash):
            return AddResult(duplicate=True)
        check_block(block)
        if block.header.prev not in self.blocks:
            if self.orphan_count >= MAX_ORPHAN_BLOCKS:  # drop the oldest waiting group
                oldest = next(iter(self.orphans))
                self.orphan_count -= len(self.orphans.pop(oldest))
            self.orphans.setdefault(block.header.prev, []).append(block)
            self.orphan_count += 1
            return AddResult(orphan=True)
        result = AddResult()
        todo = [block]
        while todo:
            b = todo.pop(0)
            self.blocks[b.hash] = b
            self.heights[b.hash] = self.heights[b.header.prev] + 1
            result.connected.append(b)
            waiting = self.orphans.pop(b.hash, [])
            self.orphan_count -= len(waiting)
            todo.extend(waiting)
        best = max(result.connected, key=lambda b: self.heights[b.hash])
        if self.heights[best.hash] > self.height:
            self._set_tip(best.hash)
            result.new_tip = True
        return result

    def _set_tip(self, h: bytes) -> None:
        path = []
        while self.heights[h] >= len(self.main) or self.main[self.heights[h]] != h:
            path.append(h)
            h = self.blocks[h].header.prev
        del self.main[self.heights[h] + 1:]
        self.main.extend(reversed(path))

    def locator(self) -> list[bytes]:
        """Core's block locator: the last 10 hashes, then exponentially sparser, then genesis."""
        out, step, height = [], 1, self.height
        while height > 0:
            out.append(self.main[height])
            if len(out) >= 10:
                step *= 2
            height -= step
        out.append(self.main[0])
        return out

    def fork_height(self, locator: list[bytes]) -> int:
        for h in locator:
            height = self.heights.get(h)
            if height is not None and height < len(self.main) and self.main[height] == h:
                return height
        return 0

    def headers_after(self, locator: list[bytes], stop: bytes = b"\x00" * 32,
                      limit: int = MAX_HEADERS_RESULTS) -> list[BlockHeader]:
        """Answer getheaders: main-chain headers after the fork point, up to `stop` or `limit`."""
        start = self.fork_height(locator) + 1 if locator else self.heights.get(stop, len(self.main))
        out = []
        for h in self.main[start:start + limit]:
            out.append(self.blocks[h].header)
            if h == stop:
                break
        return out
