"""Blocks linked by prev hash: heights, the most-work (here: highest) tip, orphans, locators.

Validation is structural: proof of work against the header's bits, merkle root, a coinbase. Every
regtest block has the same work, so the longest chain wins and the first-seen block wins a tie.

Memory is bounded by bytes: regtest proof of work costs nothing, so a peer could feed endless
forks or parentless blocks. Blocks waiting for their parent (orphans) and blocks stored off the
best chain each have a byte budget (``max_orphan_mb``, ``max_stale_mb``); past it, the oldest
orphans are dropped and a new block that would not be on the best chain is not stored.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..wire.messages import MAX_HEADERS_RESULTS
from ..wire.primitives import Block, BlockHeader, Tx, merkle_root
from ..wire.synthetic import meets_target

# Regtest genesis (kernel/chainparams.cpp CRegTestParams): the 2009 Times coinbase, nonce 2.
_GENESIS_COINBASE = bytes.fromhex(
    "01000000010000000000000000000000000000000000000000000000000000000000000000ffffffff4d04ffff001d"
    "0104455468652054696d65732030332f4a616e2f32303039204368616e63656c6c6f72206f6e206272696e6b206f66"
    "207365636f6e64206261696c6f757420666f722062616e6b73ffffffff0100f2052a01000000434104678afdb0fe55"
    "48271967f1a67130b7105cd6a828e03909a67962e0ea1f61deb649f6bc3f4cef38c4f35504e51ec112de5c384df7ba"
    "0b8d578a4c702b6bf11d5fac00000000")
MB = 1_000_000
DEFAULT_MAX_ORPHAN_BLOCKS_MB = 16  # testbed: Core keeps no orphan blocks (headers-first)
DEFAULT_MAX_STALE_BLOCKS_MB = 16  # testbed: regtest forks cost no work, so side chains are bounded


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
    dropped: bool = False  # valid, but over a byte budget: not stored


def check_block(block: Block) -> None:
    if not meets_target(block.header):
        raise BlockInvalid("block-bad-pow", "hash above the target of its bits")
    if not block.txs:
        raise BlockInvalid("block-invalid", "no coinbase")
    if merkle_root([t.txid for t in block.txs]) != block.header.merkle_root:
        raise BlockInvalid("block-invalid", "merkle root mismatch")


class Chain:
    def __init__(self, genesis: Block | None = None, max_orphan_mb: float = DEFAULT_MAX_ORPHAN_BLOCKS_MB,
                 max_stale_mb: float = DEFAULT_MAX_STALE_BLOCKS_MB) -> None:
        g = genesis or regtest_genesis()
        self.max_orphan_bytes = int(max_orphan_mb * MB)
        self.max_stale_bytes = int(max_stale_mb * MB)
        self.orphan_bytes = 0
        self.stale: dict[bytes, int] = {}  # stored blocks off the best chain -> size
        self.stale_bytes = 0
        self.genesis = g
        self.blocks: dict[bytes, Block] = {g.hash: g}
        self.heights: dict[bytes, int] = {g.hash: 0}
        self.main: list[bytes] = [g.hash]  # main chain by height
        self.orphans: dict[bytes, list[Block]] = {}  # missing parent hash -> blocks
        self.orphan_count = 0
        self._initial_download = True

    def in_initial_download(self, now: float, max_tip_age: float) -> bool:
        """Core's IsInitialBlockDownload (validation.cpp) as regtest sees it: the minimum chain work
        is 0, so a node is in initial block download while its tip is older than `max_tip_age`
        (regtest's genesis is from 2011, so every fresh node is), and once out it stays out (Core
        latches the answer)."""
        if self._initial_download and self.tip.header.time >= now - max_tip_age:
            self._initial_download = False
        return self._initial_download

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
        size = len(block.raw)
        if block.header.prev not in self.blocks:
            return self._add_orphan(block, size)
        off_best = self.heights[block.header.prev] + 1 <= self.height and block.hash not in self.orphans
        if off_best and self.stale_bytes + size > self.max_stale_bytes:
            return AddResult(dropped=True)
        result = AddResult()
        todo = [block]
        while todo:
            b = todo.pop(0)
            self.blocks[b.hash] = b
            self.heights[b.hash] = self.heights[b.header.prev] + 1
            self._mark_stale(b.hash)  # until _set_tip puts it on the best chain
            result.connected.append(b)
            waiting = self.orphans.pop(b.hash, [])
            for w in waiting:
                self.orphan_bytes -= len(w.raw)
            self.orphan_count -= len(waiting)
            todo.extend(waiting)
        best = max(result.connected, key=lambda b: self.heights[b.hash])
        if self.heights[best.hash] > self.height:
            self._set_tip(best.hash)
            result.new_tip = True
        return result

    def _add_orphan(self, block: Block, size: int) -> AddResult:
        if size > self.max_orphan_bytes:
            return AddResult(dropped=True)
        while self.orphan_bytes + size > self.max_orphan_bytes:  # drop the oldest waiting groups
            group = self.orphans.pop(next(iter(self.orphans)))
            self.orphan_count -= len(group)
            self.orphan_bytes -= sum(len(b.raw) for b in group)
        self.orphans.setdefault(block.header.prev, []).append(block)
        self.orphan_count += 1
        self.orphan_bytes += size
        return AddResult(orphan=True)

    def _mark_stale(self, h: bytes) -> None:
        if h not in self.stale:
            self.stale[h] = len(self.blocks[h].raw)
            self.stale_bytes += self.stale[h]

    def _unmark_stale(self, h: bytes) -> None:
        self.stale_bytes -= self.stale.pop(h, 0)

    def on_best_chain(self, h: bytes) -> bool:
        height = self.heights.get(h)
        return height is not None and height < len(self.main) and self.main[height] == h

    def is_ancestor(self, a: bytes, d: bytes) -> bool:
        """Whether stored block `a` is `d` or one of its ancestors: Core's
        `d->GetAncestor(a->nHeight) == a`. A block on the best chain answers from `main`; one off it
        walks back to where its branch left the best chain (bounded: side branches have a byte budget)."""
        ha, hd = self.heights.get(a), self.heights.get(d)
        if ha is None or hd is None or ha > hd:
            return False
        while not self.on_best_chain(d):
            if hd == ha:
                return d == a
            d, hd = self.blocks[d].header.prev, hd - 1
        return self.main[ha] == a

    def _set_tip(self, h: bytes) -> None:
        path = []
        while self.heights[h] >= len(self.main) or self.main[self.heights[h]] != h:
            path.append(h)
            h = self.blocks[h].header.prev
        for old in self.main[self.heights[h] + 1:]:  # a reorg: the old branch is now off the best chain
            self._mark_stale(old)
        del self.main[self.heights[h] + 1:]
        self.main.extend(reversed(path))
        for new in path:
            self._unmark_stale(new)

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
