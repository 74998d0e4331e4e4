"""The mempool: admitting a batch while many transactions are queued.

Baseline, measured in the same run: the former admission check, which
re-applied every queued transaction of the batch's senders on a scratch
overlay per batch (`AccountState.check(batch, queued)`, O(queued)); ours
steps the batch alone on the native pending state (`PendingState`,
O(batch)). Both admit the same batch into the same pool; signatures are
taken as verified (ids given), so the rows time the state rules and the
pool's bookkeeping. The rebuild row is what ours pays once per block. A second row
compares the eviction order (a heap of chain ends) built only when the pool first fills
with the former heap push at every admission.
"""

from __future__ import annotations

import hashlib
import time

from echorand._native import PendingState
from echorand.ledger.mempool import Mempool
from echorand.tools.benchmarks import Report, Row, best_time
from echorand.wire.crypto import Keypair
from echorand.wire.messages import Transaction
from echorand.wire.transactions import AccountState, transfer

SEED = b"echorand mempool benchmark"
CHAIN = hashlib.sha256(SEED).digest()
"""The genesis hash the benchmark's transactions are signed for."""
BALANCE = 10**12


class QueueRecheck(Mempool):
    """The baseline: each batch checked after its senders' whole queues."""

    def _check(self, batch: list[Transaction]) -> list[str | None]:
        senders = {tx.sender for tx in batch}
        queued = [tx for s in senders for tx in self.pending(s)]
        return self._state.check(batch, queued)

    def _redo(self, senders: set[bytes]) -> None:
        pass


class EagerTails(Mempool):
    """The former bookkeeping: the heap of chain ends (the eviction order) pushed at every
    admission, whatever the pool's room."""

    def _push_tail(self, entry) -> None:  # type: ignore[no-untyped-def]
        if self._tails is None:
            self._rebuild_tails()
        super()._push_tail(entry)


def _workload(
    senders: int, queued: int, batch: int
) -> tuple[AccountState, list[Transaction], list[Transaction]]:
    """A state funding `senders`, `queued` transactions of theirs, and the next `batch`."""
    keypairs = [
        Keypair.from_seed(hashlib.sha256(SEED + i.to_bytes(4, "big")).digest())
        for i in range(senders)
    ]
    entries = b"".join(kp.public_key + BALANCE.to_bytes(8, "big") for kp in keypairs)
    state = AccountState(entries, check_keys=False)
    txs = []
    for n in range(queued + batch):
        s = n % senders
        to = keypairs[(s + 1) % senders].public_key
        amount, fee, nonce = 1 + n % 97, 1 + n % 7, n // senders
        txs.append(transfer(keypairs[s], to, amount, fee=fee, nonce=nonce, chain=CHAIN))
    return state, txs[:queued], txs[queued:]


def _admission(pool_types: list[type[Mempool]], state, queued, batch, repeat: int) -> list[float]:
    """The best time of `add(batch)` into a pool holding `queued` (a fresh pool each time),
    for each of `pool_types`, taken in turn at each repetition: a shared machine's
    slow spells fall on all of them."""
    verified = {tx.id for tx in queued} | {tx.id for tx in batch}
    best = [float("inf")] * len(pool_types)
    for _ in range(repeat):
        for k, pool_type in enumerate(pool_types):
            pool = pool_type(state, genesis_hash=CHAIN)
            if pool.add(queued, verified) != [None] * len(queued):
                raise RuntimeError("the queued transactions were not all admitted")
            start = time.perf_counter()
            reasons = pool.add(batch, verified)
            best[k] = min(best[k], time.perf_counter() - start)
            if reasons != [None] * len(batch):
                raise RuntimeError(f"the batch was not admitted: {set(reasons)}")
    return best


def run(*, senders: int = 400, queued: int = 20_000, batch: int = 500, repeat: int = 7) -> Report:
    """Admission of `batch` transactions with `queued` queued from `senders`, ours and former."""
    state, queued_txs, batch_txs = _workload(senders, queued, batch)
    report = Report(f"mempool ({senders} senders, {queued} queued, batches of {batch})")
    ours, former, eager = _admission(
        [Mempool, QueueRecheck, EagerTails], state, queued_txs, batch_txs, repeat
    )
    report.add(
        Row(
            f"admit {batch} with {queued} queued",
            ours,
            items=batch,
            baseline="re-check the senders' queues per batch (AccountState.check)",
            baseline_seconds=former,
        )
    )
    report.add(
        Row(
            f"admit {batch} with {queued} queued, eviction order built only when full",
            ours,
            items=batch,
            baseline="the eviction heap pushed at every admission",
            baseline_seconds=eager,
        )
    )
    pending = PendingState()
    rebuild = best_time(lambda: pending.rebuild(state, queued_txs), repeat=repeat)
    report.add(
        Row(f"rebuild the pending state of {queued} queued (once per block)", rebuild, items=queued)
    )
    return report
