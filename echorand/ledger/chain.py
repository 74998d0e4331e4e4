"""The chain a ledger holds: its head in memory, its blocks read back from the store.

The head is what the next block is checked and applied against: the tip round,
its hash (the next block's `prev_hash`) and seed Q[tip], the tip block's
producer (the value of the certificate the next block carries, §16), which of
the last `window` blocks were empty, the reward level R of the tip and the
units minted since the genesis (§16). It is read from the store when the
ledger opens, and moves on (`advance`) only after a block's commit.

The reads answer for rounds 0 .. tip: blocks, certificates, hashes, seeds, the
encodings of a sync response, the producers of recent blocks.
"""

from __future__ import annotations

from collections import deque

from echorand._native import Block, Certificate
from echorand.ledger.store import LedgerError, Store, u64, uint
from echorand.wire.messages import MAX_SYNC_BLOCKS

__all__ = ["Chain"]

_EMPTY_KIND = 0x01
"""The first byte of the empty block's encoding (§6)."""
_PRODUCER_AT = 1 + 8 + 32
"""Where a proposed block's producer sits in its encoding: after kind, round, prev_hash."""


class Chain:
    """The head of the chain in `store` (attributes, which only `advance` changes) and its
    blocks; `meta` is the store's `meta` entries, `window` the reward window (§16)."""

    def __init__(self, store: Store, meta: dict[bytes, bytes], window: int) -> None:
        self._store = store
        self.tip = uint(meta[b"tip"])
        """The round of the last committed block (0: the genesis only)."""
        self.level = uint(meta[b"level"])
        """R of the tip (§16): the level the next block's verifier pool is paid at."""
        self.minted = uint(meta[b"minted"])
        """Every unit the block rewards created since the genesis."""
        with store.begin() as txn:
            self.tip_hash = store.get(txn, "hashes", self.tip)
            self.tip_seed = store.get(txn, "seeds", self.tip)
        self.recent: deque[bool] = deque(maxlen=window)
        """Which of the last `window` blocks were empty, oldest first."""
        self.tip_producer: int | None = None
        """The tip block's producer (None: the empty block, or the genesis)."""
        first = max(1, self.tip - window + 1)
        with store.begin(buffers=True) as txn:
            for r in range(first, self.tip + 1):
                raw = txn.get(u64(r), db=store.db["blocks"])
                if raw is None:
                    raise LedgerError(f"{store.path}: blocks has no entry for round {r}")
                self.recent.append(raw[0] == _EMPTY_KIND)
        if self.tip >= 1 and not self.recent[-1]:
            (self.tip_producer,) = self.recent_authors(1)

    def advance(self, block: Block, seed: bytes, level: int, minted: int) -> None:
        """The head after `block` (of round tip + 1) committed, with its seed, the reward
        level and the minted units after it."""
        self.tip, self.tip_hash, self.tip_seed = block.round, block.hash, seed
        self.tip_producer = block.producer
        self.recent.append(block.is_empty)
        self.level, self.minted = level, minted

    # --- reading -------------------------------------------------------------------

    def read(self, db: str, round: int) -> bytes | None:
        """The entry of `round` in the per-round database `db`; None past the tip."""
        if not 0 <= round <= self.tip:
            return None
        return self._store.read(db, round)

    def hash(self, round: int) -> bytes | None:
        """The hash of block `round` (round 0: the genesis hash), None past the tip."""
        return self.read("hashes", round)

    def seed(self, round: int) -> bytes | None:
        """Q[round], None past the tip."""
        return self.read("seeds", round)

    def block(self, round: int) -> Block | None:
        """Block `round`; None for round 0 and past the tip."""
        raw = self.read("blocks", round) if round >= 1 else None
        return None if raw is None else Block.from_bytes(raw)

    def certificate(self, round: int) -> Certificate | None:
        """CERT_round; None for round 0 and past the tip."""
        raw = self.read("certs", round) if round >= 1 else None
        return None if raw is None else Certificate.from_bytes(raw)

    def recent_authors(self, count: int, upto: int | None = None) -> tuple[int, ...]:
        """The producers of the last `count` non-empty blocks up to block `upto` (default the
        tip), oldest first (fewer near the genesis)."""
        authors: list[int] = []
        round = self.tip if upto is None else min(upto, self.tip)
        with self._store.begin(buffers=True) as txn:
            cursor = txn.cursor(db=self._store.db["blocks"])
            if count > 0 and cursor.set_key(u64(round)):
                for raw in cursor.iterprev(keys=False, values=True):
                    if raw[0] != _EMPTY_KIND:
                        authors.append(uint(bytes(raw[_PRODUCER_AT : _PRODUCER_AT + 8])))
                        if len(authors) == count:
                            break
        return tuple(reversed(authors))

    def encoded_blocks(
        self, from_round: int, count: int, max_bytes: int | None = None
    ) -> list[tuple[bytes, bytes]]:
        """(block, certificate) encodings of rounds `from_round ..`, at most `count`
        and at most MAX_SYNC_BLOCKS, stopping at the tip, and (with `max_bytes`) before
        their total passes `max_bytes`, the first always included: one sync response."""
        start = max(1, from_round)
        stop = min(self.tip + 1, from_round + min(count, MAX_SYNC_BLOCKS))
        if start >= stop:
            return []
        out = []
        total = 0
        with self._store.begin(buffers=True) as txn:
            blocks = txn.cursor(db=self._store.db["blocks"])
            certs = txn.cursor(db=self._store.db["certs"])
            blocks.set_key(u64(start))
            certs.set_key(u64(start))
            for _ in range(start, stop):
                block, cert = blocks.value(), certs.value()
                total += len(block) + len(cert)
                if out and max_bytes is not None and total > max_bytes:
                    break
                out.append((bytes(block), bytes(cert)))
                blocks.next()
                certs.next()
        return out
