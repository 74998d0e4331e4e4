"""Payloads: PAY_r of the blocks this node proposes, and the check of those it is proposed.

A proposed block's payload is checked by one native `AccountState.prepare` call (an
overspending or replayed transaction costs no signature check), then one batch
verification of the transactions the node has not verified before (`VerifiedTxs`), off
the event loop when there are many.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from echorand.ledger.ledger import Ledger
from echorand.node.admission import Admission
from echorand.wire.messages import Block, Transaction
from echorand.wire.transactions import verify_signatures

log = logging.getLogger(__name__)

VALIDATE_OFF_LOOP = 8192
"""Unknown transaction signatures from which a proposed block's are verified off the loop
(a quarter of a second of work): below it the answer comes at once, as it always did."""


class Payloads:
    """What goes into this node's blocks, and whether a proposed block's payload applies."""

    def __init__(self, ledger: Ledger, admission: Admission, block_max_txs: int) -> None:
        self.ledger = ledger
        self.admission = admission
        self.block_max_txs = block_max_txs
        self.tasks: set[asyncio.Task[None]] = set()
        """Verifications off the loop in progress (cancelled when the node stops)."""

    def select(self, round: int) -> list[Transaction]:
        """PAY_r: the best transactions of the mempool (the ledger is at round - 1), as many
        as the block budget allows (`Backpressure.block_txs`)."""
        started = time.perf_counter()
        txs = self.admission.mempool.select(self.admission.backpressure.block_txs())
        self.admission.note_block_seconds(round, time.perf_counter() - started)
        return txs

    def validate(self, block: Block, answer: Callable[[bool], None]) -> bool | None:
        """Whether a proposed block's payload applies to the ledger: the rules first, then
        the signatures not verified before; None when there are VALIDATE_OFF_LOOP or more:
        verified off the loop, then `answer(ok)`."""
        started = time.perf_counter()
        try:
            self.ledger.state.prepare(block)
        except ValueError as e:
            log.warning("block %s.. of round %d refused: %s", block.hash.hex()[:16], block.round, e)
            return False
        txs = block.transactions if not block.is_empty else ()
        verified = self.admission.verified
        unknown = [tx for tx in txs if tx.id not in verified]
        if len(unknown) >= VALIDATE_OFF_LOOP:
            task = asyncio.get_running_loop().create_task(self._off_loop(block, unknown, answer))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
            self.admission.note_block_seconds(block.hash, time.perf_counter() - started)
            return None
        chain = self.ledger.genesis.hash
        ok = self._signatures_ok(block, unknown, verify_signatures(unknown, chain))
        self.admission.note_block_seconds(block.hash, time.perf_counter() - started)
        return ok

    async def _off_loop(
        self, block: Block, unknown: list[Transaction], answer: Callable[[bool], None]
    ) -> None:
        loop = asyncio.get_running_loop()
        chain = self.ledger.genesis.hash
        oks = await loop.run_in_executor(None, verify_signatures, unknown, chain)
        answer(self._signatures_ok(block, unknown, oks))

    def _signatures_ok(self, block: Block, txs: list[Transaction], oks: list[bool]) -> bool:
        if not all(oks):
            log.warning(
                "block %s.. of round %d refused: %d bad signature(s)",
                block.hash.hex()[:16],
                block.round,
                oks.count(False),
            )
            return False
        self.admission.verified.add_many([tx.id for tx in txs])
        return True
