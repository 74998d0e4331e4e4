"""Every queued chain stands alone (docs/protocol.md §13, Mempool), after a recheck too, and
no refused transaction leaves a trace in the admission of others."""

from __future__ import annotations

import hashlib

from _ledger_model import genesis_entries

from echorand.ledger.mempool import Mempool
from echorand.wire import transactions as T
from echorand.wire.crypto import Keypair
from echorand.wire.messages import Transaction
from echorand.wire.transactions import AccountState, transfer

CHAIN = bytes(range(32))
"""The genesis hash transactions here are signed for (PROTOCOL §2)."""

KEYPAIRS = [Keypair.from_seed(hashlib.sha256(b"chains %d" % i).digest()) for i in range(5)]
KEYS = [kp.public_key for kp in KEYPAIRS]


def pay(sender: int, to: int, amount: int, *, fee: int = 1, nonce: int = 0) -> Transaction:
    return transfer(KEYPAIRS[sender], KEYS[to], amount, fee=fee, nonce=nonce, chain=CHAIN)


def test_a_recheck_keeps_no_chain_that_needs_another_senders_credit():
    """A block spends B's funds another way: B's queued transfer is no longer covered by
    B's balance, only with A's queued credit to B, which a block may leave out."""
    state = AccountState(genesis_entries(KEYS, [100] * len(KEYS)))
    pool = Mempool(state, genesis_hash=CHAIN)
    a0, a1 = pay(0, 2, 1, nonce=0), pay(0, 1, 50, nonce=1)  # a1 credits B (account 1)
    b0, b1 = pay(1, 3, 10, nonce=0), pay(1, 3, 80, fee=9, nonce=1)
    assert pool.add([a0, a1, b0, b1]) == [None] * 4
    state.apply([a0, pay(1, 4, 59, nonce=0)], producer=4)
    assert pool.recheck() == 3  # a0 and b0 included (nonce too low), b1 uncovered
    assert b1.id not in pool and a1.id in pool
    for n in range(1, len(pool) + 1):
        state.prepare(pool.select(n), producer=4)  # every fee-order prefix applies


def test_the_fees_of_refused_transactions_do_not_add_up():
    """Transactions that pass the rules and then fail their signature may name fees that
    would sum past 2^64: they must not make the next admissions overflow."""
    rich = 2**62
    state = AccountState(genesis_entries(KEYS, [rich, 100, 100, 100, 100]))
    pool = Mempool(state, genesis_hash=CHAIN)
    for _ in range(6):
        forged = Transaction(0, KEYS[0], KEYS[1], 1, rich - 1, 0, bytes(64))
        assert pool.add([forged]) == [T.BAD_SIGNATURE]
    assert pool.add([pay(1, 2, 5, fee=90)]) == [None]
    assert pool.add([pay(0, 2, 5, fee=rich - 5)]) == [None]
