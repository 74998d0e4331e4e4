"""The mempool: one node's path through it, the native pool against the Python one.

Ours is `echorand.ledger.mempool.Mempool`, a facade over the native `MempoolQueue`.
The baseline, measured in the same run, is the former Python mempool
(`echorand.tools.benchmarks.mempool_model.PyMempool`: its queue, chains, eviction heap
and selection in Python, the state rules natively, a rebuild of its pending state from
the whole pool after each block). Both do the same work with the same answers (the
benchmark checks them): admit a batch while many transactions are queued
(signatures taken as verified, ids given, so the rows time the rules and the
bookkeeping), name the signatures to verify (`to_verify`), select a block, recheck
the block's senders after it is applied, and admit the next batch after the block
(where the Python pool rebuilds its pending state). Each repetition takes the pools
in turn, so a shared machine's slow spells fall on all of them.

One more row keeps the former admission design as its baseline: every queued
transaction of the batch's senders re-checked per batch (`AccountState.check(batch,
queued)`, O(queued)).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache, partial
from typing import TypeVar

from echorand.ledger.mempool import Mempool
from echorand.tools.benchmarks import Report, Row
from echorand.tools.benchmarks.mempool_model import PyMempool
from echorand.wire.crypto import Keypair
from echorand.wire.messages import Transaction
from echorand.wire.transactions import AccountState, transfer

SEED = b"echorand mempool benchmark"
CHAIN = hashlib.sha256(SEED).digest()
"""The genesis hash the benchmark's transactions are signed for."""
BALANCE = 10**12
MODEL = "the Python mempool (PyMempool)"

Pool = Mempool | PyMempool
_T = TypeVar("_T")


class QueueRecheck(PyMempool):
    """The former admission check: each batch checked after its senders' whole queues."""

    def _check(self, batch: list[Transaction]) -> list[str | None]:
        senders = {tx.sender for tx in batch}
        queued = [tx for s in senders for tx in self.pending(s)]
        return self._state.check(batch, queued)

    def _redo(self, senders: set[bytes]) -> None:
        pass


@cache
def _keypairs(senders: int) -> tuple[Keypair, ...]:
    return tuple(
        Keypair.from_seed(hashlib.sha256(SEED + i.to_bytes(4, "big")).digest())
        for i in range(senders)
    )


def _state(senders: int) -> AccountState:
    """A fresh state funding `senders` accounts."""
    keypairs = _keypairs(senders)
    entries = b"".join(kp.public_key + BALANCE.to_bytes(8, "big") for kp in keypairs)
    return AccountState(entries, check_keys=False)


def _workload(
    senders: int, queued: int, batch: int
) -> tuple[AccountState, list[Transaction], list[Transaction]]:
    """A state funding `senders`, `queued` transactions of theirs, and the next `batch`."""
    keypairs = _keypairs(senders)
    txs = []
    for n in range(queued + batch):
        s = n % senders
        to = keypairs[(s + 1) % senders].public_key
        amount, fee, nonce = 1 + n % 97, 1 + n % 7, n // senders
        txs.append(transfer(keypairs[s], to, amount, fee=fee, nonce=nonce, chain=CHAIN))
    return _state(senders), txs[:queued], txs[queued:]


@dataclass(slots=True)
class _Times:
    """The best time of each step, for one pool type."""

    add: float = float("inf")
    to_verify: float = float("inf")
    select: float = float("inf")
    recheck: float = float("inf")
    add_after_block: float = float("inf")


def _timed(fn: Callable[[], _T]) -> tuple[float, _T]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def _same(what: str, answers: Sequence[object]) -> None:
    if any(a != answers[0] for a in answers[1:]):
        raise RuntimeError(f"the pools answered {what} differently")


def _ids(txs: list[Transaction]) -> list[bytes]:
    return [tx.id for tx in txs]


def _path(
    pool_types: list[type[Pool]],
    senders: int,
    queued: list[Transaction],
    batch: list[Transaction],
    block: int,
    repeat: int,
) -> list[_Times]:
    """Each pool type through one node's path, `repeat` times (fresh pools and state each
    time, the types in turn): the best time of each step."""
    verified = {tx.id for tx in queued} | {tx.id for tx in batch}
    times = [_Times() for _ in pool_types]
    for _ in range(repeat):
        state = _state(senders)
        pools = [pool_type(state, genesis_hash=CHAIN) for pool_type in pool_types]
        for pool in pools:
            if pool.add(queued, verified) != [None] * len(queued):
                raise RuntimeError("the queued transactions were not all admitted")
        todo, chosen = [], []
        for pool, t in zip(pools, times, strict=True):
            seconds, txs = _timed(partial(pool.to_verify, batch))
            t.to_verify = min(t.to_verify, seconds)
            todo.append(_ids(txs))
            seconds, txs = _timed(partial(pool.select, block))
            t.select = min(t.select, seconds)
            chosen.append(_ids(txs))
        _same("to_verify", todo)
        _same("select", chosen)
        the_block = pools[0].select(block)
        state.apply(the_block, producer=0)
        block_senders = {tx.sender for tx in the_block}
        dropped, admitted = [], []
        for pool, t in zip(pools, times, strict=True):
            seconds, n = _timed(partial(pool.recheck, block_senders))
            t.recheck = min(t.recheck, seconds)
            dropped.append(n)
            seconds, reasons = _timed(partial(pool.add, batch, verified))
            t.add_after_block = min(t.add_after_block, seconds)
            admitted.append(reasons)
        _same("recheck", dropped)
        _same("add after a block", admitted)
        if dropped[0] != len(the_block):
            raise RuntimeError("the recheck did not drop exactly the block's transactions")
    return times


def _admission(
    pool_types: list[type[Pool]],
    senders: int,
    queued: list[Transaction],
    batch: list[Transaction],
    repeat: int,
) -> list[float]:
    """The best time of `add(batch)` into a pool holding `queued` (a fresh pool each time),
    for each of `pool_types`, taken in turn at each repetition."""
    verified = {tx.id for tx in queued} | {tx.id for tx in batch}
    best = [float("inf")] * len(pool_types)
    for _ in range(repeat):
        state = _state(senders)
        for k, pool_type in enumerate(pool_types):
            pool = pool_type(state, genesis_hash=CHAIN)
            if pool.add(queued, verified) != [None] * len(queued):
                raise RuntimeError("the queued transactions were not all admitted")
            seconds, reasons = _timed(partial(pool.add, batch, verified))
            best[k] = min(best[k], seconds)
            if reasons != [None] * len(batch):
                raise RuntimeError(f"the batch was not admitted: {set(reasons)}")
    return best


def run(
    *,
    senders: int = 400,
    queued: int = 20_000,
    batch: int = 500,
    block: int = 5_000,
    repeat: int = 7,
) -> Report:
    """One node's path with `queued` transactions from `senders` queued: admit `batch`,
    `to_verify`, select a block of `block`, recheck its senders, admit again; ours
    against the Python mempool, and the admission against the former queue re-check."""
    _, queued_txs, batch_txs = _workload(senders, queued, batch)
    report = Report(
        f"mempool ({senders} senders, {queued} queued, batches of {batch}, blocks of {block})"
    )
    ours, model, former = _admission(
        [Mempool, PyMempool, QueueRecheck], senders, queued_txs, batch_txs, repeat
    )
    rows = [
        (f"add {batch} with {queued} queued", ours, batch, MODEL, model),
        (
            f"add {batch} with {queued} queued",
            ours,
            batch,
            "re-check the senders' queues per batch (AccountState.check)",
            former,
        ),
    ]
    native, python = _path([Mempool, PyMempool], senders, queued_txs, batch_txs, block, repeat)
    rows += [
        (f"to_verify {batch}, {queued} queued", native.to_verify, batch, MODEL, python.to_verify),
        (f"select {block} of {queued}", native.select, block, MODEL, python.select),
        (
            f"recheck the senders of a block of {block}",
            native.recheck,
            block,
            MODEL,
            python.recheck,
        ),
        (
            f"add {batch} after the block (the Python pool rebuilds its pending state)",
            native.add_after_block,
            batch,
            MODEL,
            python.add_after_block,
        ),
    ]
    for name, seconds, items, baseline, baseline_seconds in rows:
        report.add(Row(name, seconds, items, baseline=baseline, baseline_seconds=baseline_seconds))
    return report
