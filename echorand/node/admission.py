"""Admission: transactions from peers and the API into the node's mempool, and out again.

Every cheap check first (`Mempool.add`), the signatures of large batches off the event
loop; gossip is taken round-robin over the peers, at most CYCLE_TXS a cycle and
PEER_CYCLE_TXS of one peer; the admitted ones are relayed to every peer but their source,
and a peer that sent a bad signature is charged for it.
"""

from __future__ import annotations

import asyncio
import logging
import statistics
import time
from collections import Counter, OrderedDict
from collections.abc import Sequence
from typing import TYPE_CHECKING

from echorand.core.validate import DropReason
from echorand.ledger.ledger import Ledger
from echorand.ledger.mempool import Mempool
from echorand.node.backpressure import GOSSIP_SLACK, NODE_BUSY, Backpressure, Busy
from echorand.node.config import NodeConfig
from echorand.node.metrics import SECONDS_BUCKETS, Histogram
from echorand.wire.messages import MAX_BATCH_TXS, Block, Transaction, TxBatch
from echorand.wire.transactions import BAD_SIGNATURE, verify_signatures

if TYPE_CHECKING:
    from echorand.net.network import Batch, Network
    from echorand.net.peer import Peer

log = logging.getLogger(__name__)

VERIFIED_CAPACITY = 1 << 18
"""Transaction ids remembered as verified (two generations of half; about 25 MB)."""
ADMIT_OFF_LOOP = 2048
"""Transaction signatures from which an admission verifies them off the loop."""
CYCLE_TXS = 20_000
PEER_CYCLE_TXS = 10_000
"""Gossiped transactions admitted per cycle, and of one peer per cycle."""
BLOCK_SECONDS = 256
"""Blocks whose build or check time is kept until their commit (`Backpressure`)."""
ADMITTED_TIMES = 200_000
"""Admitted transactions whose admission time is remembered (for their finality)."""


def tx_frames(txs: Sequence[Transaction]) -> list[bytes]:
    """`tx_batch` messages of at most MAX_BATCH_TXS transactions."""
    return [TxBatch(txs[i : i + MAX_BATCH_TXS]).encode() for i in range(0, len(txs), MAX_BATCH_TXS)]


class VerifiedTxs:
    """Ids of transactions whose signature verified, at most `capacity` (two generations)."""

    def __init__(self, capacity: int = VERIFIED_CAPACITY) -> None:
        self._half = max(1, capacity // 2)
        self._new: set[bytes] = set()
        self._old: set[bytes] = set()

    def __contains__(self, tx_id: object) -> bool:
        return tx_id in self._new or tx_id in self._old

    def __len__(self) -> int:
        return len(self._new) + len(self._old)

    def add_many(self, ids: Sequence[bytes]) -> None:
        self._new.update(ids)
        if len(self._new) >= self._half:
            self._old, self._new = self._new, set()


class Admission:
    """The mempool and the way into it. `net` is set once the node listens (None: nothing
    is relayed, no peer charged)."""

    def __init__(
        self, config: NodeConfig, ledger: Ledger, counters: Counter[str] | None = None
    ) -> None:
        self.config = config
        self.ledger = ledger
        self.counters: Counter[str] = Counter() if counters is None else counters
        self.net: Network | None = None
        self.mempool = self._new_mempool()
        self.verified = VerifiedTxs()
        self.refused: Counter[str] = Counter()
        """Transactions refused, by reason."""
        self.admitted_at: OrderedDict[bytes, float] = OrderedDict()
        """Transaction id -> monotonic time of its admission here (the last ADMITTED_TIMES)."""
        self.finality_seconds = Histogram(SECONDS_BUCKETS)
        params = ledger.genesis.params
        self.backpressure = Backpressure(
            block_max_txs=config.block_max_txs,
            budget_ms=config.block_budget_ms or params.big_lam_ms / 2,
            round_ms=params.lam_ms + params.big_lam_ms,
            backlog_seconds=config.mempool_backlog_seconds,
            enabled=config.admission,
        )
        self._block_seconds: OrderedDict[bytes | int, float] = OrderedDict()
        """What building (by round) or checking (by block hash) a recent block took here."""
        self._lock = asyncio.Lock()
        """One admission at a time, in arrival order: a sender's next transactions must not
        pass its earlier ones while those are verified off the loop ("nonce too high")."""

    def _new_mempool(self) -> Mempool:
        cfg = self.config
        return Mempool(
            self.ledger.state,
            genesis_hash=self.ledger.genesis.hash,
            max_count=cfg.mempool_max_count,
            max_bytes=cfg.mempool_max_bytes,
            max_per_sender=cfg.mempool_max_per_sender,
            min_fee=cfg.mempool_min_fee,
        )

    # --- admission control (`echorand.node.backpressure`) -------------------------------

    def busy(self, wanted: int = 1, client: str | None = None) -> Busy | None:
        """Whether the API should refuse a request of `wanted` transactions from `client`
        now (429): the mempool holds more than the node commits in the next rounds, or the
        pace has no room for it yet (beside the other clients' shares)."""
        return self.backpressure.busy(len(self.mempool), wanted=wanted, client=client)

    def note_block_seconds(self, key: bytes | int, seconds: float) -> None:
        """Time spent building (key: the round) or checking (key: the hash) a block."""
        self._block_seconds[key] = self._block_seconds.get(key, 0.0) + seconds
        while len(self._block_seconds) > BLOCK_SECONDS:
            self._block_seconds.popitem(last=False)

    def observe_block(self, block: Block, seconds: float) -> None:
        """A committed block of transactions cost `seconds` to apply and recheck here, plus
        what building or checking it took before."""
        n = block.tx_count if not block.is_empty else 0
        if n:
            seconds += self._block_seconds.pop(block.hash, 0.0)
            seconds += self._block_seconds.pop(block.round, 0.0)
            self.backpressure.observe_block(n, seconds)

    # --- the ledger moved ------------------------------------------------------------

    def committed(self, block: Block) -> int:
        """A block is applied: its transactions' finality observed, the pool rechecked; how
        many queued transactions that dropped."""
        if block.is_empty or not block.tx_count:
            return 0
        now = time.monotonic()
        admitted_at = self.admitted_at
        if admitted_at:
            waits = []
            for tx in block.transactions:
                at = admitted_at.pop(tx.id, None)
                if at is not None:
                    waits.append(now - at)
                    self.finality_seconds.observe(waits[-1])
            if waits:
                self.backpressure.observe_delay(statistics.median_low(waits))
        return self.mempool.recheck({tx.sender for tx in block.transactions})

    def rolled_back(self, returned: Sequence[Transaction]) -> None:
        """After a rollback: a fresh pool on the rolled-back state, with the transactions of
        the removed blocks and those that were queued (admission checks them again). The
        removed blocks' transactions that it admits are relayed: the producers of the chain
        we switched to may never have seen them."""
        queued = self.mempool.select(len(self.mempool))
        self.mempool = self._new_mempool()
        if not returned and not queued:
            return
        reasons = self.mempool.add([*returned, *queued], self.verified)
        back = [tx for tx, why in zip(returned, reasons, strict=False) if why is None]
        if back and self.net is not None:
            self.net.broadcast_frames(tx_frames(back))
        self.counters["requeued_transactions"] += len(back)

    # --- transactions in -------------------------------------------------------------

    async def submit(
        self,
        transactions: Sequence[Transaction],
        source: Peer | None = None,
        client: str | None = None,
    ) -> list[str | None]:
        """Admit transactions (from a peer, or the API's `client`) and relay the admitted
        ones. From the API, as many as the admission bound has room for
        (`Backpressure.room`, the client's share included): the rest are refused unread
        (NODE_BUSY)."""
        if not transactions:
            return []
        shed = 0
        if source is None:
            room = self.backpressure.room(len(self.mempool), len(transactions), client)
            shed = max(0, len(transactions) - room)
            transactions = transactions[:room]
            self.backpressure.admitted(len(transactions), client)
            if shed:
                self.refused[NODE_BUSY] += shed
        reasons = await self.admit([(source, transactions)]) if transactions else []
        reasons += [NODE_BUSY] * shed
        refused = [r for r in reasons if r is not None]
        if refused:
            bad = BAD_SIGNATURE in refused
            level = logging.WARNING if source is not None and bad else logging.INFO
            if source is not None and not bad:
                level = logging.DEBUG
            log.log(
                level,
                "refused %d of %d transaction(s) from %s: %s",
                len(refused),
                len(transactions),
                source or "the API",
                sorted(set(refused)),
            )
        return reasons

    async def gossip_loop(self) -> None:
        """Gossiped transactions: peers in turn, at most CYCLE_TXS a cycle and PEER_CYCLE_TXS
        of one peer (the rest waits in the network's bounded `tx_inbox`)."""
        net = self.net
        assert net is not None
        while True:
            first = await net.tx_inbox.get()
            taken: Counter[Peer] = Counter()
            batches: list[tuple[Peer | None, Sequence[Transaction]]] = []
            batch: Batch | None = first
            while batch is not None:
                txs = [tx for msg in batch.messages for tx in msg.transactions]  # type: ignore[union-attr]
                batches.append((batch.peer, txs))
                taken[batch.peer] += len(txs)
                if sum(taken.values()) >= CYCLE_TXS:
                    break
                full = [p for p, n in taken.items() if n >= PEER_CYCLE_TXS]
                batch = net.tx_inbox.get_nowait(skip=full)
            if self.backpressure.busy(len(self.mempool), GOSSIP_SLACK) is not None:
                # Far past the bound: dropped unread (their senders' nodes hold them).
                self.counters["tx_gossip_shed"] += sum(len(txs) for _, txs in batches)
                continue
            reasons = await self.admit(batches)
            refused = [r for r in reasons if r is not None]
            if refused:
                log.log(
                    logging.WARNING if BAD_SIGNATURE in refused else logging.DEBUG,
                    "refused %d of %d transaction(s) from peers %s: %s",
                    len(refused),
                    len(reasons),
                    sorted({repr(p) for p, _ in batches}),
                    sorted(set(refused)),
                )

    async def admit(
        self, batches: list[tuple[Peer | None, Sequence[Transaction]]]
    ) -> list[str | None]:
        """One admission for transactions from several sources: the signatures the mempool
        would check verified first (off the loop when many), then `Mempool.add`; a peer that
        sent a bad signature is charged once; each admitted one is relayed to every peer but
        the one it came from. Admissions run one at a time, in the order they were asked."""
        async with self._lock:
            return await self._admit_now(batches)

    async def _admit_now(
        self, batches: list[tuple[Peer | None, Sequence[Transaction]]]
    ) -> list[str | None]:
        txs = [tx for _, batch in batches for tx in batch]
        sources = [peer for peer, batch in batches for _ in batch]
        refuted: set[bytes] = set()
        todo = self.mempool.to_verify(txs, self.verified) if len(txs) >= ADMIT_OFF_LOOP else []
        if len(todo) >= ADMIT_OFF_LOOP:
            loop = asyncio.get_running_loop()
            chain = self.ledger.genesis.hash
            oks = await loop.run_in_executor(None, verify_signatures, todo, chain)
            self.verified.add_many([tx.id for tx, ok in zip(todo, oks, strict=True) if ok])
            refuted = {tx.id for tx, ok in zip(todo, oks, strict=True) if not ok}
        reasons = self.mempool.add(txs, self.verified, refuted)
        admitted = [i for i, r in enumerate(reasons) if r is None]
        self.counters["tx_admitted"] += len(admitted)
        refused = [r for r in reasons if r is not None]
        if refused:
            self.refused.update(refused)
        if self.net is not None:
            cheats = {sources[i] for i, r in enumerate(reasons) if r == BAD_SIGNATURE}
            for peer in cheats:
                if peer is not None:
                    self.net.penalize(peer, DropReason.BAD_TRANSACTION)
        if not admitted:
            return reasons
        ids = [txs[i].id for i in admitted]
        self.verified.add_many(ids)
        self._note_admitted(ids)
        by_source: dict[Peer | None, list[Transaction]] = {}
        for i in admitted:
            by_source.setdefault(sources[i], []).append(txs[i])
        if self.net is not None:
            for peer, mine in by_source.items():
                self.net.broadcast_frames(tx_frames(mine), exclude=peer)
        return reasons

    def _note_admitted(self, ids: Sequence[bytes]) -> None:
        now = time.monotonic()
        admitted_at = self.admitted_at
        for tx_id in ids:
            admitted_at[tx_id] = now
        while len(admitted_at) > ADMITTED_TIMES:
            admitted_at.popitem(last=False)
