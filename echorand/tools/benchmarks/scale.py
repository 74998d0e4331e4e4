"""`echorand bench scale`: a node's ledger work per round at several ledger sizes.

For each `--accounts` count: a ledger (LMDB, no fsync) on a genesis of that many accounts,
then `rounds` rounds of what a node's ledger does each round: apply a block of
`transfers` transfers (every other block empty, as after a missed round), then read the
next round's stake table (the balances after the block before: an overlay of one block)
and its committees of steps 1 to 6, the table of the round before (two blocks back: the
certificate a block carries) and the delegates of its committee. The block building is
not timed. The blocks touch the same number of accounts at every size (as many as the
smallest ledger has, several transfers in nonce order from each sender), so that only
the ledger's size differs.

The first count is the baseline of the others (the ratio). The target is absolute: at
most 5 ms a round at any size, 4 % of a devnet round (about 130 ms), so that the ledger's
size cannot show in a round's time; a ledger of a million accounts does not fit the
caches, so its hash lookups and tree descents cost more than a small one's, which is no
more than a millisecond or two (docs/performance.md). The keys are 32 random
bytes each (`keys_checked`: nothing here verifies a signature), so a ten-million-account
genesis takes seconds, not the minutes of deriving real keys.
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from echorand._native import devnet_seeds
from echorand.ledger.genesis import Genesis
from echorand.ledger.ledger import Ledger
from echorand.protocol.params import Params
from echorand.tools.benchmarks import Report, Row
from echorand.tools.genesis import DEFAULT_BALANCE
from echorand.wire.columns import interleave
from echorand.wire.constants import KEY_SIZE, SIGNATURE_SIZE
from echorand.wire.messages import NO_LEADER, Block, Certificate, Transaction

PARAMS = Params(n_g=5, n_c=50, k=4, insecure_committee=True)
STEPS = range(1, 7)
TARGET_SECONDS = 0.005
_ZERO_SIG = bytes(SIGNATURE_SIZE)


def run(
    *,
    accounts: int | Sequence[int] = (400, 1_000_000),
    rounds: int = 40,
    transfers: int = 1000,
    **_ignored: Any,
) -> Report:
    counts = [accounts] if isinstance(accounts, int) else list(accounts)
    if not counts or rounds < 2 or transfers < 1 or min(counts) < 2:
        raise ValueError("need rounds >= 2, transfers >= 1 and at least 2 accounts")
    report = Report(
        f"ledger work a round by ledger size: {transfers:,} transfers every other block,"
        f" the next round's committees (N_c = {PARAMS.n_c}), mean of {rounds} rounds"
    )
    base: float | None = None
    pairs = min(transfers, min(counts) // 2)
    for n in counts:
        seconds = _mean_round(n, rounds, transfers, pairs)
        report.add(
            Row(
                f"{n:,} accounts: a round",
                seconds=seconds,
                baseline=None if base is None else f"{counts[0]:,} accounts",
                baseline_seconds=base,
                target=f"<= {TARGET_SECONDS * 1000:g} ms",
                target_met=seconds <= TARGET_SECONDS,
            )
        )
        base = seconds if base is None else base
    return report


def genesis(accounts: int) -> Genesis:
    """`accounts` accounts of DEFAULT_BALANCE with random 32-byte keys."""
    keys = devnet_seeds(bytes(KEY_SIZE), accounts)
    entries = bytearray(40 * accounts)
    balances = DEFAULT_BALANCE.to_bytes(8, "big") * accounts
    interleave(entries, 40, [(0, KEY_SIZE, keys), (KEY_SIZE, 8, balances)])
    seed = bytes(range(32))
    return Genesis("scale", PARAMS, seed, bytes(entries), keys_checked=True)


def _block(ledger: Ledger, keys: bytes, transfers: int, pairs: int) -> Block:
    """Every other block: `transfers` transfers, each from an account to the next one, from
    `pairs` senders (in nonce order from each)."""
    r = ledger.tip + 1
    if r % 2 == 0:
        return Block.empty(r, ledger.tip_hash)
    n = len(keys) // KEY_SIZE
    first = (r // 2 * 2 * pairs) % (n - 2 * pairs + 1)
    txs = []
    for j in range(transfers):
        i = first + 2 * (j % pairs)
        sender, recipient = keys[32 * i : 32 * i + 32], keys[32 * i + 32 : 32 * i + 64]
        nonce = ledger.state.nonce(i) + j // pairs
        txs.append(Transaction(0, sender, recipient, 1, 1, nonce, _ZERO_SIG))
    return Block(r, ledger.tip_hash, 0, _ZERO_SIG, txs, _ZERO_SIG, None)


def _certificate(block: Block) -> Certificate:
    if block.is_empty:
        return Certificate(block.round, 5, 1, block.hash, NO_LEADER, [])
    return Certificate(block.round, 4, 0, block.hash, block.producer, [])


def _mean_round(accounts: int, rounds: int, transfers: int, pairs: int) -> float:
    """The mean time of one round's ledger work (see the module docs), after two rounds of
    warm-up."""
    g = genesis(accounts)
    keys = g.public_keys()
    directory = Path(tempfile.mkdtemp(prefix="echorand-scale-"))
    try:
        with Ledger.open(directory, g, durable=False) as ledger:
            times = []
            for _ in range(rounds + 2):
                block = _block(ledger, keys, transfers, pairs)
                cert = _certificate(block)
                start = time.perf_counter()
                _round(ledger, block, cert)
                times.append(time.perf_counter() - start)
            return statistics.fmean(times[2:])
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _round(ledger: Ledger, block: Block, cert: Certificate) -> None:
    """Apply `block`, then the sortition and delegates the next round reads."""
    ledger.apply(block, cert)
    r = ledger.tip + 1
    seed = ledger.tip_seed
    table = ledger.stake_table(r)
    for step in STEPS:
        table.weights(seed, r, step, PARAMS.n_c)
    before = ledger.stake_table(r - 1)
    committee = before.weights(seed, r - 1, 4, PARAMS.n_c)
    for account in committee:
        ledger.delegate(r - 1, account)
